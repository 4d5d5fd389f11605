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
    StuckRecovery,
    distance_to_path,
    safety_layer,
)
from torchsuite.plugins.driving.sim.world import (
    KIND_PARKED,
    Scenario,
    ScenarioConfig,
    make_scenario,
)

STRAIGHT = np.stack([np.arange(1, 7) * 3.0, np.zeros(6)], 1)


def _radar(*targets: tuple[float, float, float]) -> dict[str, np.ndarray]:
    out = np.zeros((8, 4), np.float32)
    for k, (rng, az, rate) in enumerate(targets):
        out[k] = (rng, az, rate, 1.0)
    route = np.array([5, 0.5, 10, 1, 20, 2, 30, 3, 10, 2], np.float32)  # bearing slightly left
    return {"radar": out, "route": route}


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
                imu: torch.Tensor, route: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pts = route[:, :8].reshape(-1, 4, 2)  # 5, 10, 20, 30 m ahead on the route lane
        wp = torch.cat([pts, 2 * pts[:, 3:] - pts[:, 2:3], 3 * pts[:, 3:] - 2 * pts[:, 2:3]], 1)
        return wp, torch.tensor([12.0]), torch.tensor([1.5])


def test_the_brake_keeps_a_reckless_planner_off_a_parked_car(
    place: Callable[..., Scenario],
) -> None:
    cfg = ScenarioConfig(grid=(3, 3), traffic=0, parked=0, slow=0, min_route=150.0)
    sc = make_scenario(3, cfg)
    lane = int(sc.path.at(sc.ego_s + 30.0, "route_lane"))
    place(sc, [sc.ego_s + 30.0], [float(sc.path.lane_center(lane))], [0.0], kind=[KIND_PARKED])
    sc.ego_lane, sc.ego_v, sc.time_limit = lane, 10.0, 6.0
    plain = run_scenario(sc, LearnedPolicy(_Reckless()))
    braked = run_scenario(sc, LearnedPolicy(_Reckless(), guards=[EmergencyBrake()]))
    assert plain.collisions_static == 1
    assert braked.collisions_static == 0 and braked.collisions_vehicle == 0


def test_stuck_recovery_creeps_only_after_standing_still_with_the_path_clear() -> None:
    stopped = Plan(STRAIGHT * 0.1, 0.4, -0.5)  # a planner that keeps saying "stay"
    guard = StuckRecovery(after=1.0, duration=0.5)
    out = [guard(stopped, _radar(), 0.0) for _ in range(20)]
    creeping = [p.target_speed >= guard.creep_speed and p.accel > 0 for p in out]
    assert not any(creeping[:9])  # not before a second of standing still
    assert any(creeping[9:15])
    # ... along the route points, not the stuck plan
    creep = next(p for p, c in zip(out, creeping, strict=True) if c)
    assert np.allclose(creep.waypoints[:4], [[5, 0.5], [10, 1], [20, 2], [30, 3]])
    assert np.allclose(creep.waypoints[4:], [[40, 4], [50, 5]])
    assert sum(creeping) < len(out)  # in bursts of 0.5 s, not for good
    blocked = StuckRecovery(after=1.0)
    car_ahead = _radar((7.0, 0.0, 0.0))  # a standing car 2.4 m ahead on the path
    assert all(blocked(stopped, car_ahead, 0.0) == stopped for _ in range(30))
    moving = StuckRecovery(after=1.0)
    assert all(moving(stopped, _radar(), 5.0) == stopped for _ in range(30))


def test_safety_layer_gets_a_stuck_planner_moving_and_stops_it_behind_a_car(
    place: Callable[..., Scenario],
) -> None:
    cfg = ScenarioConfig(grid=(3, 3), traffic=0, parked=0, slow=0, min_route=150.0)
    sc = make_scenario(3, cfg)
    lane = int(sc.path.at(sc.ego_s + 30.0, "route_lane"))
    place(sc, [sc.ego_s + 30.0], [float(sc.path.lane_center(lane))], [0.0], kind=[KIND_PARKED])
    sc.ego_lane, sc.ego_v, sc.time_limit = lane, 0.0, 40.0

    class Frozen(_Reckless):
        def forward(self, *inputs: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            wp, _, _ = super().forward(*inputs)
            return wp, torch.tensor([0.2]), torch.tensor([-0.5])

    still = run_scenario(sc, LearnedPolicy(Frozen()))
    guarded = run_scenario(sc, LearnedPolicy(Frozen(), guards=safety_layer()))
    assert still.distance_km * 1000 < 0.1
    assert guarded.collisions_static == 0 and guarded.distance_km * 1000 > 10.0
