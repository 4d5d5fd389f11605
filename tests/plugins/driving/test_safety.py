"""The rule-based safety layer behind the learned planner."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn
from torchsuite.plugins.driving.closed_loop import run_scenario
from torchsuite.plugins.driving.expert import Plan
from torchsuite.plugins.driving.geometry import lane_references
from torchsuite.plugins.driving.policy import LearnedPolicy
from torchsuite.plugins.driving.safety import (
    EmergencyBrake,
    LaneChangeGuard,
    LidarBrake,
    SideGuard,
    SmoothRelease,
    distance_to_path,
    safety_layer,
)
from torchsuite.plugins.driving.sim.road import LANE_WIDTH
from torchsuite.plugins.driving.sim.sensors import box_segments, cast_rays
from torchsuite.plugins.driving.sim.world import Scenario

STRAIGHT = np.stack([np.arange(1, 7) * 3.0, np.zeros(6)], 1)


def _radar(*targets: tuple[float, float, float]) -> dict[str, np.ndarray]:
    out = np.zeros((8, 4), np.float32)
    for k, (rng, az, rate) in enumerate(targets):
        out[k] = (rng, az, rate, 1.0)
    return {"radar": out}


def test_distance_to_path_follows_the_waypoints_and_their_extension() -> None:
    pts = np.array([[9.0, 0.0], [9.0, 3.0], [40.0, 1.0], [-5.0, 0.0]])
    d = distance_to_path(pts, STRAIGHT)
    assert np.allclose(d, [0.0, 3.0, 1.0, 5.0])  # 40 m is past the last waypoint (18 m)
    left = np.stack([np.arange(1, 7) * 3.0, np.arange(1, 7) * 0.8], 1)
    assert distance_to_path(np.array([[18.0, 0.0]]), left)[0] > 4.0


def test_brakes_only_for_closing_targets_on_the_planned_path() -> None:
    brake = EmergencyBrake()
    plan = Plan(STRAIGHT, 10.0, 0.5)
    stopped_ahead = brake(plan, _radar((14.0, 0.0, -10.0)), 10.0)
    assert stopped_ahead.accel < -brake.comfort and stopped_ahead.target_speed < 10.0
    assert brake(plan, _radar((14.0, 0.0, 0.0)), 10.0) == plan  # a leader at our speed
    beside = float(np.arctan2(3.5, 14.0))  # the next lane
    assert brake(plan, _radar((14.4, beside, -10.0)), 10.0) == plan
    swerving = Plan(np.stack([np.arange(1, 7) * 3.0, np.arange(1, 7) ** 2 * 0.3], 1), 10.0, 0.5)
    assert brake(swerving, _radar((30.0, 0.0, -10.0)), 10.0) == swerving
    assert brake(plan, _radar(), 10.0) == plan


def test_stops_further_back_behind_a_car_that_stands_still() -> None:
    brake = EmergencyBrake()
    creeping = Plan(STRAIGHT, 2.0, 0.0)
    # 4 m between the bumpers, closing at our own 2 m/s: a parked car. Room to stop
    # comfortably at 2 m, but not the 5 m that leave room to steer round it.
    parked = brake(creeping, _radar((4.0 + 4.6, 0.0, -2.0)), 2.0)
    assert parked.target_speed == 0.0 and parked.accel < 0
    # The same gap to a car driving off at 1.5 m/s (closing at 0.5 m/s): left alone.
    assert brake(creeping, _radar((4.0 + 4.6, 0.0, -0.5)), 2.0) is creeping


class _Reckless(nn.Module):
    """A 'planner' that follows the route points at 12 m/s whatever is in the way."""

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor, radar: torch.Tensor,
                imu: torch.Tensor, route: torch.Tensor, *history: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pts = route[:, :8].reshape(-1, 4, 2)  # 5, 10, 20, 30 m ahead on the route lane
        wp = torch.cat([pts, 2 * pts[:, 3:] - pts[:, 2:3], 3 * pts[:, 3:] - 2 * pts[:, 2:3]], 1)
        return wp, torch.tensor([12.0]), torch.tensor([1.5])


def test_the_brake_keeps_a_reckless_planner_off_a_parked_car(
    parked_ahead: Callable[..., Scenario],
) -> None:
    sc = parked_ahead(30.0, lane="route")
    sc.ego_v, sc.time_limit = 10.0, 6.0
    plain = run_scenario(sc, LearnedPolicy(_Reckless()))
    braked = run_scenario(sc, LearnedPolicy(_Reckless(), guards=[EmergencyBrake()]))
    assert plain.collisions_static == 1
    assert braked.collisions_static == 0 and braked.collisions_vehicle == 0


def _route(y: list[float], x: tuple[float, ...] = (5.0, 10.0, 20.0, 30.0),
           limit: float = 14.0) -> np.ndarray:
    return np.array([v for p in zip(x, y, strict=True) for v in p] + [limit, 3.0], np.float32)


def _lidar_of(*boxes: tuple[float, float, float, float], rays: int = 360) -> np.ndarray:
    """A sweep of lane-aligned boxes given as (x, y, length, width)."""
    x, y, length, width = np.array(boxes, dtype=np.float64).T
    p, q = box_segments(np.stack([x, y], 1), np.zeros(len(boxes)), length, width)
    ang = np.arange(rays) * (2 * np.pi / rays)
    return cast_rays(np.zeros(2), ang, p, q, 50.0).astype(np.float32)


def _lidar_with_car(x: float, y: float, rays: int = 360) -> np.ndarray:
    return _lidar_of((x, y, 4.5, 1.8), rays=rays)


def _frame(lidar: np.ndarray) -> dict[str, np.ndarray]:
    return {"lidar": lidar, "route": _route([0.0, 0.0, 0.0, 0.0]), **_radar()}


@pytest.mark.parametrize(("car_x", "held"), [(0.0, True), (-12.0, True), (6.0, True),
                                             (-45.0, False), (40.0, False)])
def test_a_lane_change_waits_for_a_gap_in_the_next_lane(car_x: float, held: bool) -> None:
    guard = LaneChangeGuard()
    over = np.stack([np.arange(1, 7) * 3.0, np.minimum(np.arange(1, 7) * 0.9, LANE_WIDTH)], 1)
    plan = Plan(over, 10.0, 0.5)
    # No earlier sweep: a follower counts as driving at the speed limit (14 m/s).
    out = guard(plan, _frame(_lidar_with_car(car_x, LANE_WIDTH)), 10.0)
    assert (out is not plan) == held
    if held:
        assert np.abs(out.waypoints[:, 1]).max() < 1e-6  # back on the lane centre
        assert np.allclose(out.waypoints[:, 0], over[:, 0]) and out.target_speed == 10.0
    # Keeping the lane beside the same car is never touched, nor a lane change to the
    # other side.
    keep = Plan(STRAIGHT, 10.0, 0.5)
    assert guard(keep, _frame(_lidar_with_car(car_x, LANE_WIDTH)), 10.0) is keep
    assert guard(plan, _frame(_lidar_with_car(car_x, -LANE_WIDTH)), 10.0) is plan


def test_a_slower_follower_seen_in_two_sweeps_leaves_room_to_change_lanes() -> None:
    guard = LaneChangeGuard()
    over = np.stack([np.arange(1, 7) * 3.0, np.minimum(np.arange(1, 7) * 0.9, LANE_WIDTH)], 1)
    plan = Plan(over, 10.0, 0.5)
    frame = _frame(_lidar_with_car(-12.0, LANE_WIDTH))
    # 0.4 s ago the ego was 4 m back (10 m/s) and the car 14 m behind where it is now:
    # a car standing still, seen from where the ego was then.
    frame["prev_pose"] = np.array([-4.0, 0.0, 0.0], np.float32)
    frame["lidar_prev"] = _lidar_with_car(-8.0, LANE_WIDTH)
    assert guard(plan, frame, 10.0) is plan
    # The same car driving at 16 m/s (6.4 m in 0.4 s) is too close to cut in front of.
    frame["lidar_prev"] = _lidar_with_car(-12.0 - 6.4 + 4.0, LANE_WIDTH)
    assert guard(plan, frame, 10.0) is not plan


def test_the_guard_keeps_a_planner_that_cuts_in_off_the_car_beside(
    empty_scenario: Scenario, place: Callable[..., Scenario],
) -> None:
    sc = empty_scenario
    want = int(sc.path.at(sc.ego_s, "route_lane"))
    sc.ego_lane = sc.path.lanes - 1 - want  # the route wants the other lane at once
    place(sc, [sc.ego_s - 2.0], [float(sc.path.lane_center(want))], [10.0])
    sc.ego_v, sc.time_limit = 10.0, 8.0
    plain = run_scenario(sc, LearnedPolicy(_Reckless()))
    guarded = run_scenario(sc, LearnedPolicy(_Reckless(), guards=safety_layer()))
    assert plain.collisions_vehicle == 1
    assert guarded.collisions_vehicle == 0 and guarded.collisions_static == 0
    assert guarded.offroad == 0 and guarded.distance_km > 0.05


def _camera_with_car(x: float, y: float, size: int = 64, res: float = 0.5,
                     ego_row: int = 48) -> np.ndarray:
    img = np.zeros((3, size, size), np.uint8)
    r = np.arange(size)
    px = (ego_row - r)[:, None] * res  # x forward of each pixel row
    py = ((size / 2 - r) * res)[None, :]  # y left of each pixel column
    img[2] = 255 * ((np.abs(px - x) < 2.25) & (np.abs(py - y) < 0.9))
    return img


def test_at_a_junction_entry_a_plan_swinging_towards_a_car_beside_waits() -> None:
    guard = LaneChangeGuard()
    # The route points already turn hard left: no lane centre to measure from.
    turn = _route([2.9, 1.0, -1.6, -7.6], x=(2.4, 1.0, -7.0, -15.7))
    assert list(lane_references(turn)) == []
    left = Plan(np.stack([np.arange(1, 7) * 1.0, np.arange(1, 7) ** 2 * 0.05], 1), 3.0, 0.5)
    frame = {"lidar": np.full(360, 50.0, np.float32), "route": turn, **_radar(),
             "imu": np.array([2.0, 0.0, 0.0, 0.0], np.float32),
             "camera": _camera_with_car(-1.0, LANE_WIDTH)}
    out = guard(left, frame, 2.0)
    assert out.target_speed == 0.0 and out.accel < 0 and np.array_equal(out.waypoints,
                                                                        left.waypoints)
    # A car on the other side, a car well behind, a turn already under way: untouched.
    assert guard(left, {**frame, "camera": _camera_with_car(-1.0, -LANE_WIDTH)}, 2.0) is left
    assert guard(left, {**frame, "camera": _camera_with_car(-20.0, LANE_WIDTH)}, 2.0) is left
    turning = {**frame, "imu": np.array([2.0, 0.0, 1.0, 0.5], np.float32)}
    assert guard(left, turning, 2.0) is left


def test_a_standing_ego_may_pull_away_from_a_car_standing_behind_it() -> None:
    """Half in the next lane, the ego blocks a car that stopped 2 m behind it there:
    waiting for that car to pass would leave both standing for good."""
    guard = LaneChangeGuard()
    over = np.stack([np.arange(1, 7) * 1.0, np.minimum(np.arange(1, 7) * 0.6, LANE_WIDTH)], 1)
    plan = Plan(over, 1.5, 0.5)
    frame = _frame(_lidar_with_car(-6.6, LANE_WIDTH))
    frame["prev_pose"] = np.zeros(3, np.float32)  # the ego stood still
    frame["lidar_prev"] = frame["lidar"] + 0.01  # another sweep of the same scene
    assert guard(plan, frame, 0.0) is plan
    # Without an earlier sweep the same car counts as coming at the speed limit.
    frame["lidar_prev"] = frame["lidar"]
    assert guard(plan, frame, 0.0) is not plan
    # Seen closing at 5 m/s (2 m in 0.4 s) it is not waiting.
    frame["lidar_prev"] = _lidar_with_car(-8.6, LANE_WIDTH)
    assert guard(plan, frame, 0.0) is not plan


def _arc(radius: float, spacing: float = 3.0) -> np.ndarray:
    """Six waypoints along a turn of ``radius`` (negative: to the right)."""
    th = np.arange(1, 7) * spacing / abs(radius)
    return np.stack([abs(radius) * np.sin(th), radius * (1 - np.cos(th))], 1)


def test_the_lidar_brake_stops_for_a_standing_car_round_the_turn() -> None:
    brake = LidarBrake()
    right = Plan(_arc(-10.0), 6.0, 0.0)
    car = _arc(-10.0)[2]  # on the path, 9 m along the turn
    # 0.4 s ago the ego was 2.4 m back; a standing car was then 2.4 m further ahead.
    frame = _frame(_lidar_with_car(*car))
    frame["prev_pose"] = np.array([-2.4, 0.0, 0.0], np.float32)
    frame["lidar_prev"] = _lidar_with_car(car[0] + 2.4, car[1])
    out = brake(right, frame, 6.0)
    assert out.accel <= -brake.comfort and out.target_speed < 6.0
    # Turning the other way it is not in the corridor; at walking pace there is room.
    left = Plan(_arc(10.0), 6.0, 0.0)
    assert brake(left, frame, 6.0) is left
    assert brake(Plan(_arc(-10.0, 0.5), 1.0, 0.0), frame, 1.0).accel == 0.0
    # Cars parked at the route's end (where the simulator leaves those that drove past
    # it) are not in the way: the drive ends before them.
    ending = {**frame, "route": frame["route"].copy()}
    ending["route"][9] = 8.0 / 100.0  # 8 m to go
    assert brake(right, ending, 6.0) is right
    # A car driving off at 6 m/s (where it was 0.4 s ago: 2.4 m back) is the radar's.
    frame["lidar_prev"] = _lidar_with_car(car[0], car[1])
    assert brake(right, frame, 6.0) is right


def _side_frame(car_y: float, car_y_before: float, camera_car: bool = True,
                kerb_y: float | None = None) -> dict[str, np.ndarray]:
    """A car beside the ego at ``car_y`` (m, left positive), at ``car_y_before`` in the
    sweep 0.4 s earlier; optionally a wall-like kerb (a long thin box) at ``kerb_y``."""
    def sweep(y: float) -> np.ndarray:
        kerb = [(0.0, kerb_y, 60.0, 0.05)] if kerb_y is not None else []
        return _lidar_of((0.0, y, 4.5, 1.8), *kerb)

    return {"lidar": sweep(car_y), "lidar_prev": sweep(car_y_before),
            "prev_pose": np.array([-2.4, 0.0, 0.0], np.float32),
            "camera": _camera_with_car(0.0, car_y) if camera_car else _camera_with_car(99, 0)}


def test_the_side_guard_steers_away_from_a_car_closing_in_beside() -> None:
    guard = SideGuard()
    plan = Plan(STRAIGHT, 8.0, 1.0)
    # 1.05 m between the sides, 1 m less than 0.4 s ago: contact in 0.4 s.
    out = guard(plan, _side_frame(2.9, 3.9), 6.0)
    assert np.allclose(out.waypoints[:, 1], -guard.shift) and out.accel <= 0.0
    assert out.target_speed <= 6.0
    # The same car on the right: away to the left.
    out = guard(plan, _side_frame(-2.9, -3.9), 6.0)
    assert np.allclose(out.waypoints[:, 1], guard.shift)
    # Holding its distance in the next lane: left alone; so is a wall closing in (the
    # camera shows no vehicle there) and the drive's first frame (no earlier sweep).
    assert guard(plan, _side_frame(2.9, 2.92), 6.0) is plan
    assert guard(plan, _side_frame(2.9, 3.9, camera_car=False), 6.0) is plan
    first = _side_frame(2.9, 3.9)
    first["lidar_prev"] = first["lidar"]
    assert guard(plan, first, 6.0) is plan
    # Closer than the margin, even without closing: away.
    out = guard(plan, _side_frame(2.1, 2.12), 6.0)
    assert np.allclose(out.waypoints[:, 1], -guard.shift)


def test_the_side_guard_does_not_steer_into_the_kerb_on_the_other_side() -> None:
    guard = SideGuard()
    plan = Plan(STRAIGHT, 8.0, 1.0)
    out = guard(plan, _side_frame(2.9, 3.9, kerb_y=-1.1), 6.0)  # kerb 0.15 m to the right
    assert np.array_equal(out.waypoints, plan.waypoints)
    assert out.accel <= 0.0 and out.target_speed <= 6.0


def test_the_side_guard_moves_away_from_the_side_in_danger_only() -> None:
    guard = SideGuard()
    plan = Plan(STRAIGHT, 8.0, 1.0)
    frame = _side_frame(-2.1, -2.12)  # a car 0.25 m to the right, holding its distance
    # ... and another far off to the left, closing slowly (contact in 4 s): away from
    # the right one, to the left.
    far = _side_frame(5.9, 6.3)
    both = {**frame, "lidar": np.minimum(frame["lidar"], far["lidar"]),
            "lidar_prev": np.minimum(frame["lidar_prev"], far["lidar_prev"]),
            "camera": np.maximum(frame["camera"], far["camera"])}
    assert np.allclose(guard(plan, both, 6.0).waypoints[:, 1], guard.shift)
    # Cars close on both sides: no side to move to, only no speeding up.
    near = _side_frame(2.9, 3.9)
    squeezed = {**frame, "lidar": np.minimum(frame["lidar"], near["lidar"]),
                "lidar_prev": np.minimum(frame["lidar_prev"], near["lidar_prev"]),
                "camera": np.maximum(frame["camera"], near["camera"])}
    out = guard(plan, squeezed, 6.0)
    assert np.array_equal(out.waypoints, plan.waypoints) and out.accel <= 0.0


class _Drifting(_Reckless):
    """Follows the route points shifted ``drift`` metres sideways, at ``speed``."""

    def __init__(self, drift: float, speed: float) -> None:
        super().__init__()
        self.drift, self.speed = drift, speed

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        wp, _, _ = super().forward(*inputs)
        return wp + torch.tensor([0.0, self.drift]), torch.tensor([self.speed]), torch.tensor([0.0])


def test_the_side_guard_keeps_a_drifting_planner_off_the_car_beside(
    empty_scenario: Scenario, place: Callable[..., Scenario],
) -> None:
    sc = empty_scenario
    lane = int(sc.path.at(sc.ego_s, "route_lane"))
    other = 1 - lane if sc.path.lanes == 2 else lane + 1
    sc.ego_lane = lane
    d_other = float(sc.path.lane_center(other))
    place(sc, [sc.ego_s], [d_other], [8.0])  # pacing the ego in the next lane
    sc.ego_v, sc.time_limit = 8.0, 8.0
    towards = 2.2 * float(np.sign(d_other - sc.path.lane_center(lane)))  # + is left
    plain = run_scenario(sc, LearnedPolicy(_Drifting(towards, 8.0)))
    guarded = run_scenario(sc, LearnedPolicy(_Drifting(towards, 8.0), guards=[SideGuard()]))
    assert plain.collisions_vehicle == 1
    assert guarded.collisions_vehicle == 0 and guarded.offroad == 0
    assert guarded.distance_km > 0.04


def test_the_brakes_are_let_go_of_gradually() -> None:
    ease = SmoothRelease()
    frame: dict[str, np.ndarray] = {}
    cruise = Plan(STRAIGHT, 10.0, 1.0)
    assert ease(cruise, frame, 8.0) is cruise  # the first frame: nothing to limit
    hard = Plan(STRAIGHT, 0.0, -8.0)
    assert ease(hard, frame, 8.0) is hard  # braking harder at once
    accels = [ease(cruise, frame, 7.5).accel for _ in range(12)]
    # Up by 1 m/s² a frame (10 m/s³), to the plan's own 1 m/s².
    assert np.allclose(accels[:9], -8.0 + np.arange(1, 10)) and accels[-1] == 1.0
    held = SmoothRelease()
    held(hard, frame, 8.0)
    out = held(cruise, frame, 7.5)
    assert out.target_speed == 7.5 and np.array_equal(out.waypoints, cruise.waypoints)
