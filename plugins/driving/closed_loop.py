"""Closed-loop driving: run a policy through a scenario and score it.

Metrics per scenario (aggregated over scenarios by :func:`summarize`):

- route completion (fraction of the route driven), collisions and off-road events per km;
- driving score = completion x 0.60^vehicle collisions x 0.65^static collisions x
  0.70^off-road events (CARLA-leaderboard style infraction penalties); a collision ends
  the scenario;
- comfort: RMS and max |jerk|, max |lateral acceleration|;
- ACC quality while following (leader within 50 m in the ego lane, ego above 2 m/s):
  mean time headway, minimum time-to-collision, and the speed error to the desired speed
  when the road ahead is free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .expert import Plan, Tracker, _lead_in_lane, desired_speed
from .sim.sensors import SensorConfig, Sensors
from .sim.world import KIND_PARKED, Scenario, World

__all__ = ["DriveResult", "Policy", "run_scenario", "summarize"]


class Policy(Protocol):
    name: str
    #: False for policies that read the world state directly (expert, baseline).
    uses_sensors: bool

    def act(self, world: World, obs: dict[str, np.ndarray]) -> Plan: ...


@dataclass
class DriveResult:
    """One scenario's outcome."""

    seed: int
    completion: float
    distance_km: float
    collisions_vehicle: int
    collisions_static: int
    offroad: int
    jerks: list[float] = field(default_factory=list)
    lat_acc: list[float] = field(default_factory=list)
    headways: list[float] = field(default_factory=list)
    ttc_min: float = float("inf")
    speed_err: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.completion * (0.60**self.collisions_vehicle) * (
            0.65**self.collisions_static) * (0.70**self.offroad)


def run_scenario(
    scenario: Scenario,
    policy: Policy,
    sensor_cfg: SensorConfig | None = None,
    *,
    on_step: Callable[[World, dict[str, np.ndarray], Plan, float], None] | None = None,
    max_steps: int | None = None,
    perturb: Callable[[World, float, float], tuple[float, float]] | None = None,
    sense_every: int = 1,
) -> DriveResult:
    """Drive ``scenario`` with ``policy`` through the shared tracker; return the metrics.

    Args:
        on_step: Called every step with ``(world, sensors, plan, accel_cmd)`` (recording
            drives, making replays).
        max_steps: Hard cap on simulation steps (tests).
        perturb: Maps ``(world, accel, steer)`` to the command actually executed
            (noise injection while recording expert drives); the policy's plan is
            unchanged, so recorded labels stay the expert's corrective intent.
        sense_every: For policies that drive from the world state (``uses_sensors`` is
            false: expert, baseline), read the sensors only every N-th step; ``on_step``
            then gets an empty dict in between (recording keeps every N-th frame anyway).
    """
    world = World(scenario)
    sensors = Sensors(sensor_cfg or SensorConfig(), scenario.seed)
    tracker = Tracker()
    s0 = world.ego.s
    res = DriveResult(scenario.seed, 0.0, 0.0, 0, 0, 0)
    prev_a = world.ego.a
    steps = 0
    needs_obs = getattr(policy, "uses_sensors", True)
    while not world.done and (max_steps is None or steps < max_steps):
        due = needs_obs or world.step_count % max(sense_every, 1) == 0
        obs = sensors.read(world) if due else {}
        plan = policy.act(world, obs)
        accel, steer = tracker.control(plan, world.ego.v, world.dt)
        if on_step is not None:
            on_step(world, obs, plan, accel)
        if perturb is not None:
            accel, steer = perturb(world, accel, steer)
        world.step(accel, steer)
        steps += 1
        e = world.ego
        res.jerks.append((e.a - prev_a) / world.dt)
        prev_a = e.a
        res.lat_acc.append(e.v * e.yaw_rate)
        gap, v_lead = _lead_in_lane(world, int(world.path.lane_of(e.d)))
        if gap < 50.0 and e.v > 2.0:
            res.headways.append(gap / e.v)
            if e.v > v_lead + 0.1:
                # Overlapping boxes (a collision) give a zero time-to-collision, not < 0.
                res.ttc_min = min(res.ttc_min, max(gap, 0.0) / (e.v - v_lead))
        elif gap >= 80.0:
            res.speed_err.append(abs(e.v - desired_speed(world, e.s)))
    res.completion = float(np.clip((world.ego.s - s0) / (world.path.length - 2.0 - s0), 0, 1))
    res.distance_km = max(world.ego.s - s0, 0.0) / 1000.0
    if world.collided:
        if world.collision_kind == KIND_PARKED:
            res.collisions_static = 1
        else:
            res.collisions_vehicle = 1
    res.offroad = world.offroad_events
    return res


def summarize(results: list[DriveResult]) -> dict[str, Any]:
    """Aggregate scenario results into the evaluation table's columns."""
    km = max(sum(r.distance_km for r in results), 1e-6)
    jerks = np.concatenate([np.asarray(r.jerks[1:]) for r in results]) if results else np.zeros(1)
    lat = np.concatenate([np.abs(r.lat_acc) for r in results]) if results else np.zeros(1)
    head = np.concatenate([np.asarray(r.headways) for r in results] + [np.zeros(0)])
    serr = np.concatenate([np.asarray(r.speed_err) for r in results] + [np.zeros(0)])
    ttcs = [r.ttc_min for r in results if np.isfinite(r.ttc_min)]
    return {
        "scenarios": len(results),
        "driving_score": float(np.mean([r.score for r in results])),
        "route_completion": float(np.mean([r.completion for r in results])),
        "collisions_per_km": sum(r.collisions_vehicle + r.collisions_static
                                 for r in results) / km,
        "offroad_per_km": sum(r.offroad for r in results) / km,
        "km": km,
        "jerk_rms": float(np.sqrt(np.mean(jerks**2))) if len(jerks) else 0.0,
        "lat_acc_max": float(lat.max()) if len(lat) else 0.0,
        "headway_mean": float(head.mean()) if len(head) else float("nan"),
        "ttc_min": float(min(ttcs)) if ttcs else float("inf"),
        "speed_err": float(serr.mean()) if len(serr) else float("nan"),
    }
