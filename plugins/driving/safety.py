"""A rule-based safety layer behind the learned planner: radar emergency braking along the
planned path.

End-to-end planners are usually deployed behind such rules: the TransFuser agents brake
when LiDAR returns or detected boxes fall in the area ahead. The rule here reads only a
sensor the planner has (the radar measures what a single LiDAR sweep cannot: the closing
speed). Lane changes, route following and normal car following stay the network's;
``suite drive evaluate`` reports the planner with and without this layer.

Tried and dropped: creeping on after standing still for a few seconds with the radar path
clear (as the TransFuser agents do when stuck). Here a stuck planner mostly stands behind
a parked car it has not yet passed; creeping made it clip that car (4 of 32 held-out
scenarios went from standing still to a collision) or wander off the road.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .expert import EMERGENCY_DECEL, Plan
from .sim.world import EGO_LENGTH

__all__ = [
    "EmergencyBrake",
    "Guard",
    "distance_to_path",
    "safety_layer",
    "targets_in_path",
]


class Guard(Protocol):
    """Maps the planner's plan (and the current sensors, own speed) to the plan to drive."""

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan: ...


def distance_to_path(points: np.ndarray, path: np.ndarray, extend: float = 60.0) -> np.ndarray:
    """Lateral distance of ``points [N, 2]`` to the polyline from the origin through
    ``path [M, 2]`` (ego frame), continued ``extend`` metres along its last segment."""
    poly = np.concatenate([np.zeros((1, 2)), path])
    tail = poly[-1] - poly[-2]
    tail = tail / max(float(np.linalg.norm(tail)), 1e-6)
    poly = np.concatenate([poly, poly[-1:] + tail * extend])
    a, b = poly[:-1], poly[1:]  # segments [S, 2]
    ab = b - a
    t = ((points[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab**2).sum(-1), 1e-9)
    closest = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]  # [N, S, 2]
    return np.linalg.norm(points[:, None] - closest, axis=-1).min(1)


def targets_in_path(plan: Plan, radar: np.ndarray, half_width: float,
                    target_length: float) -> tuple[np.ndarray, np.ndarray]:
    """Bumper gaps (m) and closing speeds (m/s) of the radar targets on the planned path."""
    seen = radar[radar[:, 3] > 0]
    if not len(seen):
        return np.zeros(0), np.zeros(0)
    r, az, rate = seen[:, 0], seen[:, 1], seen[:, 2]
    xy = np.stack([r * np.cos(az), r * np.sin(az)], 1)
    on = (xy[:, 0] > 0) & (distance_to_path(xy, plan.waypoints) < half_width)
    return r[on] - (EGO_LENGTH + target_length) / 2, np.maximum(-rate[on], 0.0)


@dataclass
class EmergencyBrake:
    """Brake for radar targets on the planned path that the plan would not stop for.

    Args:
        half_width: Lateral distance (m) from the path at which a target's centre counts
            as in the way (half the ego's width + half a car's + a margin).
        comfort: Deceleration (m/s²) needed to stop behind a target above which the
            check takes over.
        stop_gap: Bumper gap (m) to stop at.
        target_length: Assumed length (m) of a target (radar ranges are to its centre).
    """

    half_width: float = 2.0
    comfort: float = 3.0
    stop_gap: float = 2.0
    target_length: float = 4.6

    def __call__(self, plan: Plan, obs: dict[str, np.ndarray], speed: float) -> Plan:
        gap, closing = targets_in_path(plan, np.asarray(obs["radar"]), self.half_width,
                                       self.target_length)
        if not len(gap):
            return plan
        gap = gap - self.stop_gap
        need = closing**2 / (2 * np.maximum(gap, 0.3))
        # Inside the stopping gap and still closing: stop, however slowly we approach.
        need_max = float(np.where((gap <= 0.0) & (closing > 0.1), EMERGENCY_DECEL, need).max())
        if need_max <= self.comfort:
            return plan
        brake = min(need_max, EMERGENCY_DECEL)
        return replace(plan, accel=min(plan.accel, -brake),
                       target_speed=min(plan.target_speed, max(speed - brake, 0.0)))


def safety_layer() -> list[Guard]:
    """Fresh guards for one drive (today one: brake for what is in the way)."""
    return [EmergencyBrake()]
