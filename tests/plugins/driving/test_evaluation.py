"""Driving the evaluation scenarios in one process or a pool of them."""

from __future__ import annotations

import pytest
from torch import nn
from torchsuite.core import resolve_config
from torchsuite.plugins.driving.evaluation import drive_policies, make_policy
from torchsuite.plugins.driving.expert import BaselinePolicy, ExpertPolicy
from torchsuite.plugins.driving.policy import LearnedPolicy
from torchsuite.plugins.driving.pull_out import PullOut
from torchsuite.plugins.driving.safety import SmoothRelease
from torchsuite.plugins.driving.task import DrivingConfig, DrivingTask


def test_make_policy_by_name() -> None:
    assert isinstance(make_policy("expert", None), ExpertPolicy)
    assert isinstance(make_policy("baseline", None), BaselinePolicy)
    net = nn.Linear(1, 1)
    guarded = make_policy("learned+safety", net)
    assert isinstance(guarded, LearnedPolicy) and guarded.guards
    assert guarded.name == "learned+safety"
    # The recovery acts after the brakes; only the release limit comes after it.
    assert isinstance(guarded.guards[-2], PullOut)
    assert isinstance(guarded.guards[-1], SmoothRelease)
    blind = make_policy("learned -lidar", net)
    assert isinstance(blind, LearnedPolicy) and {"lidar", "lidar_prev"} <= blind.drop
    assert not make_policy("learned", net).guards
    with pytest.raises(ValueError, match="needs a trained planner"):
        make_policy("learned", None)
    with pytest.raises(ValueError, match="unknown policy 'learned -gps'"):
        make_policy("learned -gps", net)


def test_worker_processes_give_the_results_of_one_process() -> None:
    task = DrivingTask(resolve_config(DrivingConfig, overrides=["eval.max_seconds=3"]))
    seeds = [task.cfg.eval.seed_offset + i for i in range(3)]
    todo = {"expert": seeds, "baseline": seeds[:2]}
    here = drive_policies(task, None, todo, workers=1)
    pooled = drive_policies(task, None, todo, workers=2)
    assert [r.seed for r in pooled["expert"]] == seeds  # scenario order kept
    assert len(pooled["baseline"]) == 2
    assert pooled == here
    assert here["expert"][0].distance_km > 0  # they did drive
