"""Radar emergency braking along the planned path: a rule-based layer behind the planner.

End-to-end planners are usually deployed behind a simple safety check (the TransFuser
agents brake when LiDAR returns or detected boxes fall in the area ahead). This one reads
only the radar, which measures what a single LiDAR sweep cannot: the closing speed. A
target whose position lies within a car's width of the planned path (waypoints extended
along their last direction) and that would need more than a comfortable deceleration to
stop behind overrides the plan's acceleration with that deceleration. Lane changes, route
following and normal car following stay the network's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .expert import EMERGENCY_DECEL, Plan
from .sim.world import EGO_LENGTH

__all__ = ["EmergencyBrake", "distance_to_path"]


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

    def __call__(self, plan: Plan, radar: np.ndarray, speed: float) -> Plan:
        seen = radar[radar[:, 3] > 0]
        if not len(seen):
            return plan
        r, az, rate = seen[:, 0], seen[:, 1], seen[:, 2]
        xy = np.stack([r * np.cos(az), r * np.sin(az)], 1)
        in_path = (xy[:, 0] > 0) & (distance_to_path(xy, plan.waypoints) < self.half_width)
        if not in_path.any():
            return plan
        gap = r[in_path] - (EGO_LENGTH + self.target_length) / 2 - self.stop_gap
        closing = np.maximum(-rate[in_path], 0.0)
        need = closing**2 / (2 * np.maximum(gap, 0.3))
        # Inside the stopping gap and still closing: stop, however slowly we approach.
        need = float(np.where((gap <= 0.0) & (closing > 0.1), EMERGENCY_DECEL, need).max())
        if need <= self.comfort:
            return plan
        brake = min(need, EMERGENCY_DECEL)
        return replace(plan, accel=min(plan.accel, -brake),
                       target_speed=min(plan.target_speed, max(speed - brake, 0.0)))
