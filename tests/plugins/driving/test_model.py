"""The fusion planner's inputs: which IMU channels it sees, how far its LiDAR grid reaches."""

from __future__ import annotations

import math

import torch
from torchsuite.plugins.driving.model import FusionPlanner, lidar_bev


def _inputs() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 255, (2, 3, 64, 64), generator=g, dtype=torch.uint8),
            torch.rand(2, 360, generator=g) * 50, torch.rand(2, 8, 4, generator=g),
            torch.randn(2, 4, generator=g), torch.randn(2, 10, generator=g)]


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
