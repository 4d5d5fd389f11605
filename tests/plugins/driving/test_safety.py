"""The rule-based safety layer behind the learned planner."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torchsuite.plugins.driving.closed_loop import run_scenario
from torchsuite.plugins.driving.expert import Plan
from torchsuite.plugins.driving.policy import LearnedPolicy
from torchsuite.plugins.driving.safety import (
    EmergencyBrake,
    distance_to_path,
)
from torchsuite.plugins.driving.sim.world import (
    Scenario,
)

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
