"""The fusion planner's inputs: which IMU channels it sees, how far its LiDAR grid reaches,
where the earlier LiDAR sweep lands."""

from __future__ import annotations

import math

import pytest
import torch
from torchsuite.plugins.driving.model import FusionPlanner, lidar_bev


def _inputs() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 255, (2, 3, 64, 64), generator=g, dtype=torch.uint8),
            torch.rand(2, 360, generator=g) * 50, torch.rand(2, 8, 4, generator=g),
            torch.randn(2, 4, generator=g), torch.randn(2, 10, generator=g),
            torch.rand(2, 360, generator=g) * 50, torch.randn(2, 3, generator=g)]


def test_speed_only_planner_ignores_the_imu_accelerations() -> None:
    torch.manual_seed(0)
    speed_only = FusionPlanner(width=16).eval()
    torch.manual_seed(0)
    full = FusionPlanner(width=16, imu_channels=(0, 1, 2, 3)).eval()
    x = _inputs()
    shaken = [t.clone() for t in x]
    shaken[3][:, 1:] += 5.0  # other accelerations and yaw rate
    with torch.no_grad():
        assert torch.equal(speed_only(*x)[0], speed_only(*shaken)[0])
        assert not torch.allclose(full(*x)[0], full(*shaken)[0])
        faster = [t.clone() for t in x]
        faster[3][:, 0] += 5.0
        assert not torch.allclose(speed_only(*x)[0], speed_only(*faster)[0])


def test_lidar_grid_reaches_further_at_a_coarser_resolution() -> None:
    ranges = torch.full((1, 360), 50.0)
    ranges[0, 0] = 40.0  # one return straight ahead, 40 m away
    fine = lidar_bev(ranges, 64, 0.5, 48, 50.0)
    coarse = lidar_bev(ranges, 64, 1.0, 48, 50.0)
    assert fine.sum() == 0  # beyond the 24 m the 0.5 m grid covers
    assert coarse.sum() == 1 and coarse[0, 0, 48 - 40, 32] == 1
    assert math.isclose(float(coarse.max()), 1.0)


def test_earlier_sweep_is_moved_into_the_current_ego_frame() -> None:
    ranges = torch.full((2, 360), 50.0)
    ranges[:, 0] = 10.0  # a return 10 m straight ahead of where the sweep was taken
    # sweep 0 taken 4 m behind the current pose; sweep 1 there too but facing left
    pose = torch.tensor([[-4.0, 0.0, 0.0], [-4.0, 0.0, math.pi / 2]])
    grid = lidar_bev(ranges, 64, 1.0, 48, 50.0, pose)
    assert grid[0, 0, 48 - 6, 32] == 1 and grid[0].sum() == 1  # 6 m ahead now
    assert grid[1, 0, 48 + 4, 32 - 10] == 1 and grid[1].sum() == 1  # 4 m behind, 10 m left


def test_history_planner_reads_the_earlier_sweep_and_the_plain_one_does_not() -> None:
    torch.manual_seed(0)
    with_history = FusionPlanner(width=16).eval()
    torch.manual_seed(0)
    plain = FusionPlanner(width=16, history=False).eval()
    x = _inputs()
    moved = [t.clone() for t in x]
    moved[6][:, 0] += 3.0  # the earlier sweep was taken elsewhere
    with torch.no_grad():
        assert not torch.allclose(with_history(*x)[0], with_history(*moved)[0])
        assert torch.equal(plain(*x)[0], plain(*moved)[0])
        assert torch.equal(plain(*x[:5])[0], plain(*x)[0])
        with pytest.raises(ValueError, match="lidar_prev"):
            with_history(*x[:5])


def test_route_points_nearer_than_route_from_are_hidden() -> None:
    torch.manual_seed(0)
    far_only = FusionPlanner(width=16, route_from=20.0).eval()
    torch.manual_seed(0)
    all_points = FusionPlanner(width=16).eval()
    x = _inputs()
    near_moved = [t.clone() for t in x]
    near_moved[4][:, :4] += 3.0  # the 5 m and 10 m points jump into the next lane
    far_moved = [t.clone() for t in x]
    far_moved[4][:, 4:6] += 3.0  # the 20 m point
    with torch.no_grad():
        assert torch.equal(far_only(*x)[0], far_only(*near_moved)[0])
        assert not torch.allclose(far_only(*x)[0], far_only(*far_moved)[0])
        assert not torch.allclose(all_points(*x)[0], all_points(*near_moved)[0])
    with pytest.raises(ValueError, match="hides every route point"):
        FusionPlanner(width=16, route_from=31.0)


def test_lidar_grid_extent_behind_is_configurable() -> None:
    ranges = torch.full((1, 360), 50.0)
    ranges[0, 180] = 30.0  # a car closing from 30 m behind
    short = FusionPlanner(width=16, lidar_behind=16.0).bev
    wide = FusionPlanner(width=16).bev  # 32 m behind by default
    assert short[0] == 64 and wide[0] == 80 and wide[2] == 48
    assert lidar_bev(ranges, *short).sum() == 0  # 16 m behind is all it sees
    assert lidar_bev(ranges, *wide)[0, 0, 48 + 30, 40] == 1
    with pytest.raises(ValueError, match="LiDAR grid"):
        FusionPlanner(width=16, lidar_res=0.25)
