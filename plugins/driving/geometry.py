"""Ego-frame geometry the rule-based safety layer measures with: LiDAR returns as points,
the centre line of the ego's lane from the route sensor, and positions along and across
that lane."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .sim.road import LANE_WIDTH

__all__ = ["LaneFrame", "lane_references", "lidar_points", "repeats_sweep", "standing_points"]


def lidar_points(ranges: np.ndarray, max_range: float,
                 pose: np.ndarray | None = None) -> np.ndarray:
    """Ego-frame points ``[N, 2]`` of the rays that hit something (sweep taken at ``pose``,
    x, y, yaw in the current ego frame; None: here)."""
    ranges = np.asarray(ranges, np.float64)
    ang = np.arange(len(ranges)) * (2 * np.pi / len(ranges))
    hit = ranges < max_range - 0.5
    r, ang = ranges[hit], ang[hit]
    if pose is None:
        return np.stack([r * np.cos(ang), r * np.sin(ang)], 1)
    ang = ang + pose[2]
    return np.stack([pose[0] + r * np.cos(ang), pose[1] + r * np.sin(ang)], 1)


def repeats_sweep(obs: dict[str, np.ndarray]) -> bool:
    """Whether the frame's earlier LiDAR sweep is its current one: a drive's first frame,
    where no motion is known (a standing ego's pose is zero too, but its sweeps differ by
    their noise)."""
    return bool(np.array_equal(obs.get("lidar_prev"), obs["lidar"]))


def standing_points(pts: np.ndarray, obs: dict[str, np.ndarray], lidar_range: float
                    ) -> np.ndarray:
    """Which of the current LiDAR returns ``pts [N, 2]`` have a return of the earlier sweep
    within 0.3 m (``[N]`` bool): they stood still (all of them when there is no earlier
    sweep)."""
    pose = obs.get("prev_pose")
    if pose is None or "lidar_prev" not in obs or not len(pts):
        return np.ones(len(pts), dtype=bool)
    before = lidar_points(obs["lidar_prev"], lidar_range, np.asarray(pose))
    if not len(before):
        return np.zeros(len(pts), dtype=bool)
    d2 = ((pts[:, None] - before[None]) ** 2).sum(-1)  # [N, M]
    return d2.min(1) < 0.3**2


def lane_references(route: np.ndarray, lane_width: float = LANE_WIDTH,
                    max_rms: float = 0.15, max_slope: float = 0.25) -> Iterator[np.poly1d]:
    """Candidate centre lines ``y(x)`` (ego frame) of the lane the route sensor's nearest
    point lies in, best first: a quadratic through its four points 5-30 m ahead, through
    the nearest three, the line through the nearest two. No candidate where the ego is
    not driving along the lane (in a junction turn). Lazy: a caller that takes the first
    candidate fits no others (the safety layer asks every frame).

    The points lie on the lane the route wants at each distance, so where that changes
    within 30 m the later points sit one or two lanes over: each such jump is tried and
    the quadratic that fits best, preferring none, is the lane. Where the road bends
    away ahead (a turn coming up) no quadratic fits all four and the nearer points stand
    in.
    """
    pts = np.asarray(route[:8], np.float64).reshape(4, 2)
    pts = pts[np.concatenate([[True], np.diff(pts[:, 0]) > 1.0])]  # repeats at the route end
    for n in range(len(pts), 1, -1):
        deg = min(n - 1, 2)
        best: tuple[float, np.ndarray] | None = None
        for j in range(n):
            for k in (0,) if j == 0 else (-2, -1, 1, 2):
                y = pts[:n, 1].copy()
                y[j:] -= k * lane_width
                coef = np.polyfit(pts[:n, 0], y, deg)
                rms = float(np.sqrt(np.mean((np.polyval(coef, pts[:n, 0]) - y) ** 2)))
                cost = rms + (0.3 if k else 0.0)
                if best is None or cost < best[0]:
                    best = (cost, coef)
        assert best is not None
        ref = np.poly1d(best[1])
        slope = np.abs(ref.deriv()(np.array([-30.0, 0.0, 30.0])))
        if best[0] <= max_rms and slope[1] <= max_slope and slope.max() <= 4 * max_slope:
            yield ref


class LaneFrame:
    """Along-lane position and signed offset (m, left positive) from a centre line
    ``y = ref(x)`` in the ego frame, sampled every half metre from 60 m behind to 60 m
    ahead (arc length 0 at the sample beside the ego)."""

    def __init__(self, ref: np.poly1d, step: float = 0.5) -> None:
        x = np.arange(-60.0, 60.0 + step, step)
        self.xy = np.stack([x, ref(x)], 1)  # [S, 2]
        seg = np.diff(self.xy, axis=0)  # [S-1, 2]
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=1))])
        self.arc = arc - np.interp(0.0, x, arc)  # [S]
        seg = np.concatenate([seg, seg[-1:]])
        self.tangent = seg / np.linalg.norm(seg, axis=1, keepdims=True)  # [S, 2]

    def _closest(self, pts: np.ndarray) -> np.ndarray:
        return np.argmin(((pts[:, None] - self.xy[None]) ** 2).sum(-1), axis=1)

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(along, offset)`` of points ``[N, 2]``."""
        k = self._closest(pts)
        rel = pts - self.xy[k]
        t = self.tangent[k]
        return (self.arc[k] + (rel * t).sum(1),
                t[:, 0] * rel[:, 1] - t[:, 1] * rel[:, 0])

    def shift(self, pts: np.ndarray, offset: float) -> np.ndarray:
        """Points ``[N, 2]`` moved across the lane to ``offset``, at the same along-lane
        position."""
        k = self._closest(pts)
        t = self.tangent[k]
        normal = np.stack([-t[:, 1], t[:, 0]], 1)
        base = self.xy[k] + t * ((pts - self.xy[k]) * t).sum(1, keepdims=True)
        return base + normal * offset

    def point(self, along: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Ego-frame points ``[N, 2]`` at along-lane positions ``along [N]`` and offsets
        ``offset [N]`` (the inverse of :meth:`project`)."""
        base = np.stack([np.interp(along, self.arc, self.xy[:, 0]),
                         np.interp(along, self.arc, self.xy[:, 1])], 1)
        t = np.stack([np.interp(along, self.arc, self.tangent[:, 0]),
                      np.interp(along, self.arc, self.tangent[:, 1])], 1)
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        return base + np.stack([-t[:, 1], t[:, 0]], 1) * np.asarray(offset)[:, None]
