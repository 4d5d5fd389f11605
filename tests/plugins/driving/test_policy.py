"""The learned planner as a closed-loop policy: what it hands the network each step."""

from __future__ import annotations

import torch
from torch import nn
from torchsuite.plugins.driving.closed_loop import run_scenario
from torchsuite.plugins.driving.drives import HISTORY_DT
from torchsuite.plugins.driving.policy import LearnedPolicy, command_accel
from torchsuite.plugins.driving.sim.world import Scenario


class _Recorder(nn.Module):
    """Drives straight at ``speed`` (asking for ``accel``) and keeps every input it got."""

    def __init__(self, speed: float = 10.0, accel: float = 0.0) -> None:
        super().__init__()
        self.speed, self.accel = speed, accel
        self.calls: list[tuple[torch.Tensor, ...]] = []

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.calls.append(tuple(x.clone() for x in inputs))
        wp = torch.stack([torch.arange(1, 7) * 5.0, torch.zeros(6)], 1)[None]
        return wp, torch.tensor([self.speed]), torch.tensor([self.accel])


def test_policy_hands_the_sweep_from_history_dt_ago_and_where_it_was_taken(
    empty_scenario: Scenario,
) -> None:
    empty_scenario.ego_v = 10.0
    model = _Recorder()
    run_scenario(empty_scenario, LearnedPolicy(model), max_steps=12)
    lidar = [c[1] for c in model.calls]
    back = round(HISTORY_DT / 0.1)  # the simulation runs at 10 Hz
    assert torch.equal(model.calls[0][5], lidar[0])  # at the start: its own sweep
    assert torch.equal(model.calls[0][6], torch.zeros(1, 3))
    for k in range(back, 12):
        assert torch.equal(model.calls[k][5], lidar[k - back])
        x, y, yaw = model.calls[k][6][0].tolist()
        # 0.4 s at about 10 m/s on a gently curving route: about 4 m behind, little offset
        assert -4.5 < x < -3.5 and abs(y) < 0.5 and abs(yaw) < 0.2
    # an ablated LiDAR removes the earlier sweep too
    blind = _Recorder()
    run_scenario(empty_scenario, LearnedPolicy(blind, drop=("lidar",)), max_steps=6)
    assert all(not c[1].any() and not c[5].any() and not c[6].any() for c in blind.calls)


def test_command_follows_the_target_speed_and_the_accel_head_only_to_stop() -> None:
    assert command_accel(0.8, -1.1, 0.0) > 0  # the heads disagree: go, as the target says
    assert command_accel(8.0, 0.5, 10.0) < 0
    assert command_accel(0.0, -3.0, 2.0) == -3.0  # stopping: as hard as the head says
    assert command_accel(0.0, 0.2, 2.0) < 0  # a stop target never speeds up


def test_a_planner_whose_heads_disagree_at_a_standstill_still_starts_off(
    empty_scenario: Scenario,
) -> None:
    empty_scenario.ego_v = 0.0
    res = run_scenario(empty_scenario, LearnedPolicy(_Recorder(speed=0.8, accel=-1.1)),
                       max_steps=40)
    assert res.distance_km * 1000 > 1.0
