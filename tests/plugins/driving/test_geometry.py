"""Ego-frame geometry of the safety layer: the lane centre from the route sensor, and
positions along and across it."""

from __future__ import annotations

import numpy as np
from torchsuite.plugins.driving.geometry import LaneFrame, lane_references, lidar_points
from torchsuite.plugins.driving.sim.road import LANE_WIDTH


def _route(y: list[float], x: tuple[float, ...] = (5.0, 10.0, 20.0, 30.0),
           limit: float = 14.0) -> np.ndarray:
    return np.array([v for p in zip(x, y, strict=True) for v in p] + [limit, 3.0], np.float32)


def test_lidar_points_drop_rays_that_hit_nothing_and_follow_the_sweep_pose() -> None:
    ranges = np.full(4, 50.0)
    ranges[1] = 10.0  # the ray at 90 degrees: 10 m to the left
    assert np.allclose(lidar_points(ranges, 50.0), [[0.0, 10.0]], atol=1e-9)
    moved = lidar_points(ranges, 50.0, np.array([-4.0, 1.0, np.pi / 2]))
    assert np.allclose(moved, [[-14.0, 1.0]], atol=1e-9)  # taken 4 m back, turned left


def test_lane_references_follow_the_nearest_route_points_lane() -> None:
    left = next(lane_references(_route([3.5, 3.5, 3.5, 3.5])))
    assert abs(left(0.0) - 3.5) < 1e-6 and abs(left(-20.0) - 3.5) < 1e-6
    # The route wants the lane two over from 20 m on: the reference stays on the first.
    jump = list(lane_references(
        _route([3.5, 3.5, 3.5 + 2 * LANE_WIDTH, 3.5 + 2 * LANE_WIDTH])))
    assert abs(jump[0](15.0) - 3.5) < 1e-6
    gentle = list(lane_references(
        _route([-0.012 * x**2 / 2 for x in (5.0, 10.0, 20.0, 30.0)])))
    assert abs(gentle[0](0.0)) < 1e-6 and abs(gentle[0](-20.0) + 2.4) < 1e-6  # 80 m radius
    # A turn beginning 15 m ahead: the four points fit no lane, the nearest ones do.
    turn = list(lane_references(
        _route([0.0, 0.0, 0.5 * 5.0**2 * 0.06, 0.5 * 15.0**2 * 0.06])))
    assert len(turn) >= 1 and all(abs(r(0.0)) < 0.5 for r in turn)
    bend = list(lane_references(
        _route([0.05 * x**2 / 2 for x in (5.0, 10.0, 20.0, 30.0)])))
    assert bend == []  # in a junction turn: the ego is not driving along a lane
    # Close to the end of the route the points repeat; the nearest two still give the lane.
    end = list(lane_references(_route([1.0, 1.5, 1.5, 1.5], x=(5.0, 10.0, 10.0, 10.0))))
    assert len(end) == 1 and abs(end[0](0.0) - 0.5) < 1e-6


def test_lane_frame_measures_along_and_across_a_sloped_lane() -> None:
    frame = LaneFrame(np.poly1d([0.1, 0.0]))  # y = 0.1 x
    normal = np.array([-0.1, 1.0]) / np.sqrt(1.01)
    pts = np.array([[10.0, 1.0], [-20.0, -2.0]]) + np.array([[1.5], [-2.0]]) * normal
    along, off = frame.project(pts)
    assert np.allclose(along, [10.0 * np.sqrt(1.01), -20.0 * np.sqrt(1.01)], atol=1e-6)
    assert np.allclose(off, [1.5, -2.0], atol=1e-6)
    moved = frame.shift(pts, 3.5)
    assert np.allclose(frame.project(moved)[1], 3.5, atol=1e-6)
    assert np.allclose(frame.project(moved)[0], along, atol=1e-6)


def test_lane_frame_point_inverts_project() -> None:
    frame = LaneFrame(np.poly1d([0.01, 0.1, 0.5]))  # a bending lane, ego 0.5 m right of it
    along, offset = np.array([-5.0, 0.0, 3.0, 12.0]), np.array([0.0, -0.5, 1.2, 3.5])
    back_along, back_offset = frame.project(frame.point(along, offset))
    assert np.allclose(back_along, along, atol=0.05)
    assert np.allclose(back_offset, offset, atol=0.05)
