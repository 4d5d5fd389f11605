"""Pulling out round a standing obstacle for a planner that stopped behind it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torchsuite.plugins.driving.closed_loop import run_scenario
from torchsuite.plugins.driving.policy import LearnedPolicy
from torchsuite.plugins.driving.pull_out import PullOut, blend, swept_clear
from torchsuite.plugins.driving.sim.world import EGO_WIDTH, KIND_PARKED, Scenario, World


def test_blend_starts_at_the_ego_heading_and_ends_on_the_lane() -> None:
    along = np.array([0.0, 5.0, 10.0, 14.0])
    offset, slope = blend(along, 1.0, 3.5, 10.0, slope0=0.2)
    assert np.isclose(offset[0], 1.0) and np.isclose(slope[0], 0.2)
    assert np.allclose(offset[2:], 3.5) and np.allclose(slope[2:], 0.0)
    assert 1.0 < offset[1] < 3.5


def test_the_swept_box_turns_with_the_heading() -> None:
    along, offset = np.array([0.0]), np.array([0.0])
    ahead = (np.array([2.0]), np.array([0.0]))
    assert not swept_clear(along, offset, np.zeros(1), *ahead, (0.3, 0.3))
    left = (np.array([2.0]), np.array([EGO_WIDTH / 2 + 0.5]))
    right = (np.array([2.0]), np.array([-EGO_WIDTH / 2 - 0.5]))
    assert swept_clear(along, offset, np.zeros(1), *left, (0.3, 0.1))
    # Turned 0.4 rad to the left, the front corner swings onto the point on the left and
    # away from the one on the right (a lane-aligned bounding box would cover both).
    assert not swept_clear(along, offset, np.array([0.4]), *left, (0.3, 0.1))
    assert swept_clear(along, offset, np.array([0.4]), *right, (0.3, 0.1))
    assert swept_clear(along, offset, np.zeros(1), np.zeros(0), np.zeros(0), (0.3, 0.3))


class _Stopper(nn.Module):
    """A 'planner' that points along the route lane and never moves."""

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor, radar: torch.Tensor,
                imu: torch.Tensor, route: torch.Tensor, *history: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pts = route[:, :8].reshape(-1, 4, 2)
        wp = torch.cat([pts, 2 * pts[:, 3:] - pts[:, 2:3], 3 * pts[:, 3:] - 2 * pts[:, 2:3]], 1)
        return wp, torch.tensor([0.0]), torch.tensor([-1.0])


def test_pulls_out_round_a_parked_car_the_planner_stopped_behind(
    parked_ahead: Callable[..., Scenario],
) -> None:
    sc = parked_ahead(11.0)
    sc.ego_v, sc.time_limit = 0.0, 16.0
    kerb = float(sc.path.lane_center(sc.ego_lane))
    other = float(sc.path.lane_center(sc.ego_lane - 1))
    ends: dict[str, float] = {}

    def last_d(key: str) -> Callable[[World, dict, object, float], None]:
        def on_step(world: World, obs: dict, plan: object, accel: float) -> None:
            ends[key] = world.ego.d
        return on_step

    stuck = run_scenario(sc, LearnedPolicy(_Stopper()), on_step=last_d("stuck"))
    pull = PullOut()
    out = run_scenario(sc, LearnedPolicy(_Stopper(), guards=[pull]), on_step=last_d("out"))
    assert abs(ends["stuck"] - kerb) < 0.1 and stuck.distance_km < 1e-3
    assert out.collisions_static == 0 and out.collisions_vehicle == 0
    assert abs(ends["out"] - other) < pull.done + 0.1  # in the next lane, handed back
    assert out.distance_km * 1000 > 6.0


def test_waits_while_the_next_lane_is_taken(parked_ahead: Callable[..., Scenario],
                                            place: Callable[..., Scenario]) -> None:
    """Behind the parked car, with another parked beside the ego in the next lane, it
    does not move."""
    sc = parked_ahead(11.0)
    sc.ego_v, sc.time_limit = 0.0, 8.0
    kerb = float(sc.path.lane_center(sc.ego_lane)) - 0.6
    other = float(sc.path.lane_center(sc.ego_lane - 1))
    place(sc, [sc.ego_s + 11.0, sc.ego_s + 3.0], [kerb, other], [0.0, 0.0],
                   kind=[KIND_PARKED, KIND_PARKED])
    res = run_scenario(sc, LearnedPolicy(_Stopper(), guards=[PullOut()]))
    assert res.collisions_static == 0 and res.distance_km < 1e-3


def test_pulls_out_when_the_planner_stops_for_a_car_just_beside_its_way(
    parked_ahead: Callable[..., Scenario], place: Callable[..., Scenario],
) -> None:
    """A car standing half a metre to the side of the ego's straight way ahead still
    stops the planner; after the wait the ego is taken into the next lane, round it."""
    sc = parked_ahead(11.0)
    sc.ego_v, sc.time_limit = 0.0, 16.0
    centre = float(sc.path.lane_center(sc.ego_lane))
    place(sc, [sc.ego_s + 11.0], [centre - (EGO_WIDTH / 2 + 0.5 + 0.9)], [0.0],
          kind=[KIND_PARKED])
    pull = PullOut()
    out = run_scenario(sc, LearnedPolicy(_Stopper(), guards=[pull]))
    assert out.collisions_static == 0 and out.distance_km * 1000 > 6.0
    narrow = run_scenario(sc, LearnedPolicy(_Stopper(), guards=[PullOut(beside=0.3)]))
    assert narrow.distance_km < 1e-3  # a narrower look beside does not see it
