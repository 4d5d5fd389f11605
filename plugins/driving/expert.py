"""The expert driver (labels and reference) and the simple baseline.

- :func:`acc_accel`: adaptive cruise, a time-headway IDM-like law held within comfort
  limits (decel <= 3.5 m/s², bounded jerk) unless the situation is an emergency.
- :class:`ExpertPolicy`: a Frenet lattice: candidate target lanes x lateral
  durations (quintic lateral profiles), each with the ACC speed profile for its lane,
  scored for collision, comfort, progress and the lane the A* route needs.
- :class:`BaselinePolicy`: lane keeping + plain IDM, no planning (no lane changes).
- :class:`Tracker`: pure pursuit on the plan's waypoints + PI speed control; every
  policy (expert, baseline, learned) drives through the same tracker.

A policy maps ``(world, sensors)`` to a :class:`Plan`: ego-frame waypoints every
:data:`WAYPOINT_DT` seconds, a target speed and an acceleration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sim.traffic import idm_accel, lane_occupancy, leader_gaps
from .sim.world import EGO_LENGTH, EGO_WIDTH, WHEELBASE, World

__all__ = [
    "N_WAYPOINTS",
    "TARGET_SPEED_DT",
    "WAYPOINT_DT",
    "BaselinePolicy",
    "ExpertPolicy",
    "Plan",
    "Tracker",
    "acc_accel",
]

N_WAYPOINTS = 6
WAYPOINT_DT = 0.5
#: A plan's target speed is the speed it means to have this many seconds from now.
TARGET_SPEED_DT = 1.0
ACC_T = 1.5  # time headway (s)
ACC_S0 = 3.0  # standstill gap (m)
#: Standstill gap behind something standing: room to pull out round it later (a car
#: 3 m behind a parked one cannot steer out of the lane with its turning circle).
STANDING_S0 = 6.0
ACC_A = 1.5  # comfortable acceleration
ACC_B = 2.0  # comfortable deceleration in the IDM term
COMFORT_DECEL = 3.5
EMERGENCY_DECEL = 8.0
JERK_LIMIT = 4.0  # m/s^3 in normal driving
LAT_ACC_MAX = 2.0  # m/s^2 for curve speeds


@dataclass
class Plan:
    """What a policy hands to the tracker (ego frame: x forward, y left)."""

    waypoints: np.ndarray  # [N_WAYPOINTS, 2]
    target_speed: float
    accel: float


def acc_accel(v: float, v_des: float, gap: float, v_lead: float, prev_a: float,
              dt: float, s0: float = ACC_S0) -> tuple[float, bool]:
    """Adaptive cruise acceleration and whether it is an emergency.

    Time-headway IDM: ``a = A (1 - (v/v_des)^4 - (s*/gap)^2)`` with
    ``s* = s0 + v T + v dv / (2 sqrt(A B))``. Clipped to ``[-3.5, A]`` and jerk-limited,
    except in an emergency (time-to-collision under 2 s, or the kinematic decel needed
    to stop behind the leader exceeds the comfort limit), when up to 8 m/s² is allowed.
    """
    dv = v - v_lead
    s_star = s0 + max(0.0, v * ACC_T + v * dv / (2 * np.sqrt(ACC_A * ACC_B)))
    a = ACC_A * (1 - (v / max(v_des, 0.1)) ** 4 - (s_star / max(gap, 0.1)) ** 2)
    closing = dv > 0.1
    ttc = gap / dv if closing else np.inf
    need = dv**2 / (2 * max(gap - 1.0, 0.1)) if closing else 0.0
    emergency = ttc < 2.0 or need > COMFORT_DECEL or gap < 1.5
    if emergency:
        a = min(a, -need)
        return float(np.clip(a, -EMERGENCY_DECEL, ACC_A)), True
    a = float(np.clip(a, -COMFORT_DECEL, ACC_A))
    return float(np.clip(a, prev_a - JERK_LIMIT * dt, prev_a + JERK_LIMIT * dt)), False


def desired_speed(world: World, s: float) -> float:
    """Speed limit, lowered ahead of curves to keep lateral acceleration comfortable."""
    path = world.path
    ahead = np.arange(s, s + 35.0, 2.5)
    kappa = np.abs(path.at(ahead, "kappa")).max()
    v_curve = np.sqrt(LAT_ACC_MAX / max(kappa, 1e-4))
    return float(min(path.at(s, "speed_limit"), v_curve))


def _to_ego(world: World, pts: np.ndarray) -> np.ndarray:
    e = world.ego
    rel = pts - np.array([e.x, e.y])
    c, s = np.cos(e.yaw), np.sin(e.yaw)
    return np.stack([rel[..., 0] * c + rel[..., 1] * s, -rel[..., 0] * s + rel[..., 1] * c], -1)


def _lead_in_lane(world: World, lane: int) -> tuple[float, float]:
    """Gap and speed of the nearest actor ahead of the ego occupying ``lane``."""
    act = world.actors()
    occ = lane_occupancy(act["d"], act["width"], world.path.lanes)
    lanes = np.append(np.zeros(len(act["s"]) - 1, dtype=np.int64), lane)
    gap, v_lead, _ = leader_gaps(act["s"], act["v"], act["length"], occ, lanes)
    return float(gap[-1]), float(v_lead[-1])


def _lead_in_path(world: World) -> tuple[float, float]:
    """Gap and speed of the nearest vehicle ahead whose box overlaps the ego's own lateral
    extent (lane indices aside: half out of a lane behind a parked car, it is the ego's
    body, not its lane, that decides whether the car ahead is still in the way)."""
    tr, e = world.tr, world.ego
    gap = tr["s"] - e.s - (tr["length"] + EGO_LENGTH) / 2
    ahead = (tr["s"] > e.s) & (np.abs(tr["d"] - e.d) < (tr["width"] + EGO_WIDTH) / 2 + 0.2)
    if not ahead.any():
        return float("inf"), 0.0
    k = int(np.argmin(np.where(ahead, gap, np.inf)))
    return float(gap[k]), float(tr["v"][k])


def _follower_unsafe(world: World, lane: int) -> bool:
    """MOBIL-style safety: a car behind in ``lane`` is too close for us to cut in."""
    tr, e = world.tr, world.ego
    if not len(tr["s"]):
        return False
    occ = lane_occupancy(tr["d"], tr["width"], world.path.lanes)[:, lane]
    gap = e.s - tr["s"] - (tr["length"] + EGO_LENGTH) / 2
    behind = occ & (tr["s"] < e.s) & (gap > -0.5)
    need = 3.0 + 0.6 * tr["v"] + 2.5 * np.maximum(tr["v"] - e.v, 0.0)
    return bool((behind & (gap < need)).any())


def _quintic(d0: float, dd0: float, d1: float, T: float, t: np.ndarray) -> np.ndarray:
    """Lateral offset of a quintic from (d0, d0', 0) to (d1, 0, 0) over T seconds."""
    a0, a1, a2 = d0, dd0, 0.0
    h = d1 - d0
    c3 = (10 * h - 6 * dd0 * T) / T**3
    c4 = (-15 * h + 8 * dd0 * T) / T**4
    c5 = (6 * h - 3 * dd0 * T) / T**5
    tt = np.minimum(t, T)
    d = a0 + a1 * tt + a2 * tt**2 + c3 * tt**3 + c4 * tt**4 + c5 * tt**5
    return d


class ExpertPolicy:
    """Lattice local planner + ACC, following the A* route's lane needs."""

    name = "expert"
    uses_sensors = False
    horizon = np.arange(1, 9) * 0.5  # collision check times (s)

    def __init__(self) -> None:
        self.prev_a = 0.0
        self.target_lane: int | None = None
        self._d_prev = None

    def _route_cost(self, world: World, lane: int) -> float:
        path, s = world.path, world.ego.s
        want = int(path.at(s, "route_lane"))
        if lane == want:
            return 0.0
        gap, v_lead = _lead_in_lane(world, want)
        if gap < 40.0 and v_lead < 0.5:
            # The lane the route needs is blocked by something standing: pass it first and
            # merge behind it (pulling in now only parks us behind it).
            return 0.5
        # Distance to the end of the current edge: urgency grows as the junction nears.
        idx = path.edge_index
        k = int(path._idx(np.asarray(s)))
        ahead = np.flatnonzero(idx[k:] != idx[k])
        dist = ahead[0] * path.ds if len(ahead) else path.length - s
        return 0.5 + 12.0 * float(np.clip(1.0 - dist / 120.0, 0.0, 1.0)) * abs(lane - want)

    def _collides(self, world: World, d_traj: np.ndarray, s_traj: np.ndarray) -> bool:
        tr = world.tr
        if not len(tr["s"]):
            return False
        t = self.horizon
        s_o = tr["s"][None, :] + tr["v"][None, :] * t[:, None]
        ds = np.abs(s_o - s_traj[:, None])
        dd = np.abs(tr["d"][None, :] - d_traj[:, None])
        hit = (ds < (tr["length"] + EGO_LENGTH)[None, :] / 2 + 1.5) & (
            dd < (tr["width"] + EGO_WIDTH)[None, :] / 2 + 0.5)
        return bool(hit.any())

    def act(self, world: World, obs: dict[str, np.ndarray] | None = None) -> Plan:
        e, path = world.ego, world.path
        cur = int(path.lane_of(e.d))
        if self.target_lane is None:
            self.target_lane = cur
        v_des = desired_speed(world, e.s)
        d_rate = 0.0 if self._d_prev is None else (e.d - self._d_prev) / world.dt
        self._d_prev = e.d
        best: tuple[float, int, float, float, np.ndarray, np.ndarray] | None = None
        t = self.horizon
        g2, v2 = _lead_in_path(world)  # the same for every candidate lane
        for lane in range(max(cur - 1, 0), min(cur + 2, path.lanes)):
            own_gap, own_v = _lead_in_lane(world, lane)
            gap, v_lead = own_gap, own_v
            s0 = STANDING_S0 if own_v < 0.5 else ACC_S0
            # The car ahead of our body still matters while we move over to another lane.
            if lane != cur and g2 < gap and g2 < 15.0:
                # Pulling out from behind something standing may creep to within a metre
                # of it; with the full standstill gap a stopped car never starts.
                gap, v_lead, s0 = g2, v2, (1.0 if v2 < 0.5 else ACC_S0)
            a, emergency = acc_accel(e.v, v_des, gap, v_lead, self.prev_a, world.dt, s0)
            # A lane blocked by something standing still costs far more than a detour.
            blocked = 20.0 if (own_gap < 30.0 and own_v < 0.5) else 0.0
            unsafe = lane != cur and _follower_unsafe(world, lane)
            v_traj = np.maximum(e.v + a * t, 0.0)
            s_traj = e.s + (e.v + v_traj) / 2 * t
            route_cost = self._route_cost(world, lane)  # independent of T
            for T in (3.0, 4.5):
                d_traj = _quintic(e.d, d_rate, float(path.lane_center(lane)), T, t)
                collide = self._collides(world, d_traj, s_traj)
                lat_acc = np.abs(np.diff(d_traj, 2)).max() / 0.25 if len(t) > 2 else 0.0
                cost = (
                    100.0 * collide
                    + 100.0 * unsafe
                    + blocked
                    + 2.0 * max(v_des - float(v_traj[-1]), 0.0) / max(v_des, 1.0) * 5
                    + 0.5 * lat_acc
                    + (1.0 if lane != cur else 0.0)
                    + (0.8 if lane != self.target_lane else 0.0)  # hysteresis
                    + route_cost
                    + 0.3 * (T == 4.5)
                    + (3.0 if emergency else 0.0)
                )
                if best is None or cost < best[0]:
                    best = (cost, lane, a, float(v_traj[1]), d_traj, s_traj)
        assert best is not None
        _, lane, a, _, d_traj, s_traj = best
        self.target_lane = lane
        self.prev_a = a
        wp_t = np.arange(1, N_WAYPOINTS + 1) * 0.5
        s_wp = np.interp(wp_t, t, s_traj)
        # Keep a minimum look-ahead so the path stays defined when stopped.
        s_path = np.maximum(s_wp, e.s + np.linspace(1.0, 6.0, N_WAYPOINTS))
        d_wp = np.interp(wp_t, t, d_traj)
        pts, _ = path.to_world(s_path, d_wp)
        v_target = max(e.v + a * TARGET_SPEED_DT, 0.0)
        return Plan(_to_ego(world, pts), v_target, a)


class BaselinePolicy:
    """Lane keeping on the starting lane + IDM on the car ahead; no planning."""

    name = "baseline"
    uses_sensors = False

    def __init__(self) -> None:
        self.lane: int | None = None

    def act(self, world: World, obs: dict[str, np.ndarray] | None = None) -> Plan:
        e, path = world.ego, world.path
        if self.lane is None:
            self.lane = int(path.lane_of(e.d))
        gap, v_lead = _lead_in_lane(world, self.lane)
        v0 = float(path.at(e.s, "speed_limit"))
        a = float(idm_accel(np.array([e.v]), np.array([v0]), np.array([gap]),
                            np.array([e.v - v_lead]))[0])
        a = float(np.clip(a, -EMERGENCY_DECEL, ACC_A))
        s = e.s + np.maximum(np.arange(1, N_WAYPOINTS + 1) * 0.5 * e.v,
                             np.linspace(1.0, 6.0, N_WAYPOINTS))
        pts, _ = path.to_world(s, np.full(N_WAYPOINTS, path.lane_center(self.lane)))
        return Plan(_to_ego(world, pts), max(e.v + a, 0.0), a)


class Tracker:
    """Pure pursuit (lateral) + PI on speed with the plan's acceleration as feed-forward."""

    def __init__(self, kp: float = 0.6, ki: float = 0.05) -> None:
        self.kp, self.ki = kp, ki
        self.integral = 0.0

    def control(self, plan: Plan, v: float, dt: float) -> tuple[float, float]:
        """Acceleration and steering commands for the current plan."""
        wp = np.concatenate([np.zeros((1, 2)), plan.waypoints])
        seg = np.linalg.norm(np.diff(wp, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        look = float(np.clip(2.5 + 0.5 * v, 4.0, arc[-1] if arc[-1] > 4.0 else 4.0))
        if arc[-1] < look:  # extend along the last segment direction
            direction = wp[-1] - wp[-2]
            direction = direction / max(np.linalg.norm(direction), 1e-6)
            target = wp[-1] + direction * (look - arc[-1])
        else:
            target = np.array([np.interp(look, arc, wp[:, 0]), np.interp(look, arc, wp[:, 1])])
        ld2 = max(float(target @ target), 1e-6)
        steer = float(np.arctan(2 * WHEELBASE * target[1] / ld2))
        err = plan.target_speed - v
        self.integral = float(np.clip(self.integral + err * dt, -5.0, 5.0))
        accel = plan.accel + self.kp * err * 0.3 + self.ki * self.integral * 0.2
        if plan.target_speed < 0.3 and plan.accel <= 0.0 and v < 0.5:
            # Hold still, unless the plan asks to creep forward (pulling out from behind a
            # parked car starts at walking pace: holding then would deadlock the plan).
            accel = min(accel, -1.0)
        return accel, steer

