"""The simulated world: a route corridor through a town, traffic and the ego vehicle.

Scope (stated plainly): traffic lives on the ego's route corridor (moving IDM/MOBIL
cars, slow leaders, parked cars on the kerb lane); cross traffic at intersections is
not simulated. The ego is a kinematic bicycle in world coordinates, so steering
errors really move it off its lane; everything else is in Frenet coordinates of the
corridor. One :meth:`World.step` advances ``dt`` seconds; all randomness comes from
the scenario seed, so a seed reproduces a drive exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .road import LANE_WIDTH, Town, make_town
from .route import LaneRoute, Path, astar_route, build_path
from .traffic import idm_accel, lane_occupancy, leader_gaps, mobil_targets

__all__ = ["RULES", "Scenario", "ScenarioConfig", "World", "boxes_overlap", "make_scenario"]

WHEELBASE = 2.7
EGO_LENGTH, EGO_WIDTH = 4.6, 1.9
MAX_STEER = 0.6
MAX_STEER_RATE = 1.0  # rad/s
KIND_MOVING, KIND_PARKED, KIND_SLOW = 0, 1, 2
#: Version of the rules that decide a drive's outcome (collisions, off-road, completion):
#: evaluations under other rules are not compared or merged. 2: collisions between
#: oriented boxes (1: the ego's lane-aligned bounding box).
RULES = 2


def boxes_overlap(center: np.ndarray, heading: float, half: tuple[float, float],
                  centers: np.ndarray, headings: np.ndarray, lengths: np.ndarray,
                  widths: np.ndarray) -> np.ndarray:
    """Which of N oriented boxes overlap one oriented box (separating-axis test).

    Args:
        center, heading, half: The box: centre ``[2]``, heading (rad), half length and
            half width (m).
        centers, headings, lengths, widths: The others: ``[N, 2]``, ``[N]``, ``[N]``, ``[N]``.

    Returns:
        ``[N]`` bool.
    """
    def axes(h: np.ndarray) -> np.ndarray:  # [..., 2 (along, across), 2 (x, y)]
        c, s = np.cos(h), np.sin(h)
        return np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)

    a = axes(np.asarray(heading, dtype=float))  # [2, 2]
    b = axes(np.asarray(headings, dtype=float))  # [N, 2, 2]
    ha = np.asarray(half, dtype=float)  # [2]
    hb = np.stack([lengths, widths], -1) / 2  # [N, 2]
    gap = centers - center  # [N, 2]
    # Two rectangles are apart iff one of their four edge directions separates them.
    cand = np.concatenate([np.broadcast_to(a, b.shape), b], 1)  # [N, 4, 2]
    dist = np.abs(np.einsum("nkx,nx->nk", cand, gap))  # [N, 4]
    reach_a = np.abs(np.einsum("nkx,jx->nkj", cand, a)) @ ha  # [N, 4]
    reach_b = np.einsum("nkj,nj->nk", np.abs(np.einsum("nkx,njx->nkj", cand, b)), hb)
    return ~(dist > reach_a + reach_b).any(1)


@dataclass
class ScenarioConfig:
    """What a scenario contains (``data.*``/``eval.*`` keys map onto these)."""

    town_seed: int = 0
    grid: tuple[int, int] = (4, 4)
    lanes: int = 2
    traffic: int = 10
    parked: int = 2
    slow: int = 1
    min_route: float = 250.0
    dt: float = 0.1


@dataclass
class Scenario:
    """A route on a town plus the initial traffic, all derived from ``seed``."""

    seed: int
    town: Town
    route: LaneRoute
    path: Path
    traffic: dict[str, np.ndarray]
    ego_s: float
    ego_lane: int
    time_limit: float
    cfg: ScenarioConfig = field(default_factory=ScenarioConfig)
    #: Initial ego speed (m/s); negative means half the speed limit.
    ego_v: float = -1.0


def _pick_route(town: Town, rng: np.random.Generator, min_len: float) -> tuple[LaneRoute, Path]:
    for _ in range(200):
        a, b = rng.choice(len(town.edges), 2, replace=False)
        lane = int(rng.integers(town.edges[a].lanes))
        route = astar_route(town, (int(a), lane), int(b))
        if route is None:
            continue
        path = build_path(town, route)
        if path.length >= min_len:
            return route, path
    raise RuntimeError(f"town {town.seed}: no route of {min_len} m found")


def make_scenario(seed: int, cfg: ScenarioConfig | None = None) -> Scenario:
    """Build scenario ``seed``: route (A*) on town ``cfg.town_seed`` and traffic."""
    cfg = cfg or ScenarioConfig()
    rng = np.random.default_rng([cfg.town_seed, seed])
    town = make_town(cfg.town_seed, cfg.grid, lanes=cfg.lanes)
    route, path = _pick_route(town, rng, cfg.min_route)
    ego_s, ego_lane = 5.0, route.states[0][1]
    n_total = cfg.traffic + cfg.parked + cfg.slow
    slots = np.arange(ego_s + 25.0, path.length - 15.0, 14.0)
    slots = np.concatenate([slots, np.arange(ego_s - 12.0, -60.0, -14.0)])
    pick = rng.choice(len(slots), size=min(n_total, len(slots)), replace=False)
    s = slots[pick] + rng.uniform(-2, 2, len(pick))
    kind = np.full(len(pick), KIND_MOVING)
    kind[: cfg.parked] = KIND_PARKED
    kind[cfg.parked : cfg.parked + cfg.slow] = KIND_SLOW
    # Parked cars and slow leaders go ahead of the ego so that they matter.
    ahead_idx = np.argsort(~(s > ego_s + 20), kind="stable")
    s = s[ahead_idx]
    # Parked cars never stand in the last 45 m before a junction (the turn lane).
    near_junction = path.at(s + 45.0, "edge_index") != path.at(s, "edge_index")
    for i in np.flatnonzero((kind == KIND_PARKED) & near_junction):
        kind[i] = KIND_MOVING
    lane = rng.integers(0, path.lanes, len(s))
    lane[kind == KIND_PARKED] = path.lanes - 1
    limit = path.at(np.clip(s, 0, None), "speed_limit")
    v0 = limit * rng.uniform(0.75, 1.05, len(s))
    v0[kind == KIND_SLOW] = rng.uniform(3.0, 6.0, (kind == KIND_SLOW).sum())
    v0[kind == KIND_PARKED] = 0.0
    d = path.lane_center(lane) - np.where(kind == KIND_PARKED, 0.6, 0.0)
    traffic = {
        "s": s.astype(np.float64),
        "d": d,
        "lane": lane.astype(np.int64),
        "v": np.where(kind == KIND_PARKED, 0.0, v0 * 0.8),
        "v0": v0,
        "a": np.zeros(len(s)),
        "length": np.where(kind == KIND_PARKED, 4.4, rng.uniform(4.0, 5.2, len(s))),
        "width": rng.uniform(1.7, 2.0, len(s)),
        "kind": kind,
        "forced_accel": np.full(len(s), np.nan),
    }
    # Nobody starts faster than it can follow its leader at the IDM headway (a car
    # placed right behind a parked one would otherwise crash before it can brake).
    act_s = np.append(traffic["s"], ego_s)
    act_d = np.append(d, path.lane_center(ego_lane))
    act_len = np.append(traffic["length"], EGO_LENGTH)
    occ = lane_occupancy(act_d, np.append(traffic["width"], EGO_WIDTH), path.lanes)
    gap, _, _ = leader_gaps(act_s, np.append(traffic["v"], 0.0), act_len, occ,
                            np.append(lane, ego_lane))
    traffic["v"] = np.minimum(traffic["v"], np.maximum(gap[:-1] - 2.0, 0.0) / 1.4)
    limit_time = path.length / 4.0 + 20.0
    # The ego's initial speed has its own generator so the traffic above stays the same.
    # A third of the drives start from standstill: drives that always start rolling never
    # show a driver pulling away, and a planner learnt from them may never start.
    v_rng = np.random.default_rng([cfg.town_seed, seed, 5])
    limit0 = float(path.at(ego_s, "speed_limit"))
    ego_v = 0.0 if v_rng.random() < 1 / 3 else float(v_rng.uniform(0.3, 0.9)) * limit0
    return Scenario(seed, town, route, path, traffic, ego_s, ego_lane, limit_time, cfg, ego_v)


@dataclass
class EgoState:
    x: float
    y: float
    yaw: float
    v: float
    a: float = 0.0
    steer: float = 0.0
    yaw_rate: float = 0.0
    s: float = 0.0
    d: float = 0.0


class World:
    """Steps the ego (from commands) and the traffic (IDM/MOBIL); tracks infractions."""

    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.path = scenario.path
        self.dt = scenario.cfg.dt
        self.t = 0.0
        self.step_count = 0
        self.tr = {k: v.copy() for k, v in scenario.traffic.items()}
        xy, hd = self.path.to_world(scenario.ego_s, self.path.lane_center(scenario.ego_lane))
        v_init = scenario.ego_v
        if v_init < 0:
            v_init = float(self.path.at(scenario.ego_s, "speed_limit")) * 0.5
        self.ego = EgoState(float(xy[0]), float(xy[1]), float(hd), v_init,
                            s=scenario.ego_s, d=float(self.path.lane_center(scenario.ego_lane)))
        self.collided = False
        self.collision_kind = -1
        self.offroad = False
        self.offroad_events = 0
        self._onroad_steps = 10**9
        self.lost = False
        self._rng = np.random.default_rng([scenario.seed, 7])
        self._lc_timer = self._rng.uniform(0, 1.0, len(self.tr["s"]))
        self._lat_v = np.zeros(len(self.tr["s"]))
        self._tw_cache: Any = None

    # ------------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        return (self.collided or self.lost or self.ego.s >= self.path.length - 2.0
                or self.t >= self.sc.time_limit - 1e-6)  # float sums of dt

    def actors(self) -> dict[str, np.ndarray]:
        """Traffic + ego as one Frenet array set (ego last)."""
        tr, e = self.tr, self.ego
        return {
            "s": np.append(tr["s"], e.s),
            "d": np.append(tr["d"], e.d),
            "v": np.append(tr["v"], e.v),
            "length": np.append(tr["length"], EGO_LENGTH),
            "width": np.append(tr["width"], EGO_WIDTH),
        }

    def traffic_world(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Traffic boxes in world frame: centre [N, 2], heading [N], length, width, velocity
        [N, 2]."""
        if self._tw_cache is not None:
            return self._tw_cache  # every sensor and the collision check ask for it
        tr = self.tr
        xy, hd = self.path.to_world(tr["s"], tr["d"])
        if len(tr["s"]):
            # Heading follows the lateral motion during lane changes.
            hd = hd + np.arctan2(self._lat_v, np.maximum(tr["v"], 1.0))
        vel = np.stack([np.cos(hd), np.sin(hd)], -1) * tr["v"][:, None]
        out = (xy, hd, tr["length"], tr["width"], vel)
        self._tw_cache = out
        return out

    # ------------------------------------------------------------------ dynamics
    def step(self, accel_cmd: float, steer_cmd: float) -> None:
        """Advance ``dt`` with the ego's commanded acceleration (m/s^2) and steering (rad)."""
        self._step_traffic()
        self._step_ego(accel_cmd, steer_cmd)
        self._check()
        self.t += self.dt
        self.step_count += 1

    def _step_ego(self, accel_cmd: float, steer_cmd: float) -> None:
        e, dt = self.ego, self.dt
        a = float(np.clip(accel_cmd, -9.0, 3.0))
        max_d = MAX_STEER_RATE * dt
        e.steer = float(np.clip(np.clip(steer_cmd, -MAX_STEER, MAX_STEER),
                                e.steer - max_d, e.steer + max_d))
        v_new = max(e.v + a * dt, 0.0)
        a = (v_new - e.v) / dt
        v_mid = (e.v + v_new) / 2
        e.yaw_rate = v_mid * np.tan(e.steer) / WHEELBASE
        e.yaw += e.yaw_rate * dt
        e.x += v_mid * np.cos(e.yaw) * dt
        e.y += v_mid * np.sin(e.yaw) * dt
        e.v, e.a = v_new, a
        # The car moves at most v*dt per step: search just around the last s.
        reach = 1.0 + 1.5 * v_mid * dt
        e.s, e.d = self.path.project(np.array([e.x, e.y]), e.s, window=reach, ahead=reach)

    def _step_traffic(self) -> None:
        tr, dt, path = self.tr, self.dt, self.path
        self._tw_cache = None  # they move now
        if not len(tr["s"]):
            return
        act = self.actors()
        lane_all = np.append(tr["lane"], path.lane_of(self.ego.d))
        occ = lane_occupancy(act["d"], act["width"], path.lanes)
        gap, v_lead, _ = leader_gaps(act["s"], act["v"], act["length"], occ, lane_all)
        n = len(tr["s"])
        # Desired speed: own v0 capped by the limit and by curvature ahead (lat acc 2 m/s^2).
        kappa = np.abs(path.at(tr["s"] + 12.0, "kappa"))
        v_curve = np.sqrt(2.0 / np.maximum(kappa, 1e-4))
        limit = path.at(tr["s"], "speed_limit")
        v0 = np.where(tr["kind"] == KIND_MOVING, np.minimum(tr["v0"], 1.05 * limit), tr["v0"])
        v0 = np.minimum(v0, v_curve)
        gap, v_lead = gap[:n], v_lead[:n]
        # While moving over, whatever stands in the lane being left still counts.
        cur = path.lane_of(tr["d"])
        changing = cur != tr["lane"]
        if changing.any():
            lane_cur = np.append(cur, path.lane_of(self.ego.d))
            g2, v2, _ = leader_gaps(act["s"], act["v"], act["length"], occ, lane_cur)
            closer = changing & (g2[:n] < gap)
            gap, v_lead = np.where(closer, g2[:n], gap), np.where(closer, v2[:n], v_lead)
        acc = idm_accel(tr["v"], v0, gap, tr["v"] - v_lead)
        acc = np.where(np.isnan(tr["forced_accel"]), np.clip(acc, -9.0, 2.0), tr["forced_accel"])
        acc = np.where(tr["kind"] == KIND_PARKED, 0.0, acc)
        # Lane changes (MOBIL), decided about once per second per vehicle.
        self._lc_timer -= dt
        settled = np.abs(tr["d"] - path.lane_center(tr["lane"])) < 0.3
        movable = np.append((self._lc_timer <= 0) & (tr["kind"] == KIND_MOVING) & settled, False)
        if movable.any():
            v0_all = np.append(v0, max(self.ego.v, 1.0))
            target = mobil_targets(act["s"], act["v"], v0_all, act["length"], occ, lane_all,
                                   path.lanes, movable)[:n]
            tr["lane"] = target
            self._lc_timer[movable[:n]] = 1.0
        # Lateral motion towards the lane centre (parked cars stay where they are).
        want = path.lane_center(tr["lane"]) - np.where(tr["kind"] == KIND_PARKED, 0.6, 0.0)
        self._lat_v = np.clip((want - tr["d"]) * 0.8, -1.2, 1.2)
        self._lat_v[tr["kind"] == KIND_PARKED] = 0.0
        tr["d"] = tr["d"] + self._lat_v * dt
        v_new = np.maximum(tr["v"] + acc * dt, 0.0)
        tr["s"] = tr["s"] + (tr["v"] + v_new) / 2 * dt
        tr["a"] = (v_new - tr["v"]) / dt
        tr["v"] = v_new

    def _check(self) -> None:
        e, tr = self.ego, self.tr
        if abs(e.d) > 12.0:
            self.lost = True  # far outside the corridor: the projection is meaningless
        outside = e.d < -self.path.lanes * LANE_WIDTH or e.d > 0.5
        # One event per excursion: wobbling on the edge line counts again only after a
        # second back on the road.
        if outside and not self.offroad and self._onroad_steps >= round(1.0 / self.dt):
            self.offroad_events += 1
        self._onroad_steps = 0 if outside else self._onroad_steps + 1
        self.offroad = outside
        if len(tr["s"]):
            # The oriented boxes the LiDAR sees, not lane-aligned extents: an ego angled
            # out behind a parked car is as wide as the car, not as its bounding box.
            # Only cars near along the route: past its ends the world positions are
            # clamped to the end points.
            near = np.flatnonzero((np.abs(tr["s"] - e.s) < (tr["length"] + EGO_LENGTH) / 2 + 1.0)
                                  & (tr["s"] >= 0) & (tr["s"] <= self.path.length))
            if len(near):
                xy, hd, length, width, _ = self.traffic_world()
                hit = boxes_overlap(np.array([e.x, e.y]), e.yaw,
                                    (EGO_LENGTH / 2, EGO_WIDTH / 2), xy[near], hd[near],
                                    length[near], width[near])
                if hit.any():
                    self.collided = True
                    self.collision_kind = int(tr["kind"][near[np.argmax(hit)]])

