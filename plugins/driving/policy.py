"""The learned planner as a closed-loop policy, and loading it from a run directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .drives import SENSORS
from .expert import Plan
from .safety import Guard
from .sim.world import World

__all__ = ["ABLATABLE", "LearnedPolicy", "load_planner", "planner_from_run"]

#: Sensors an ablation may remove (zero); the route is the navigation goal, not a sensor.
ABLATABLE = ("camera", "lidar", "radar", "imu")


class LearnedPolicy:
    """Runs the fusion planner on the current sensor frame (batch 1, CPU)."""

    uses_sensors = True

    def __init__(self, model: nn.Module, drop: tuple[str, ...] = (), name: str = "learned",
                 guards: Sequence[Guard] = ()) -> None:
        self.model = model.eval()
        self.drop = set(drop)
        self.name = name
        self.guards = list(guards)

    @torch.no_grad()
    def act(self, world: World, obs: dict[str, np.ndarray]) -> Plan:
        inputs = []
        for k in SENSORS:
            x = torch.as_tensor(np.asarray(obs[k]))[None]
            inputs.append(torch.zeros_like(x) if k in self.drop else x)
        wp, speed, accel = self.model(*inputs)
        plan = Plan(wp[0].numpy().astype(np.float64), max(float(speed[0]), 0.0),
                    float(accel[0]))
        for guard in self.guards:
            plan = guard(plan, obs, float(obs["imu"][0]))
        return plan


def load_planner(task: Any, run_dir: Path) -> nn.Module:
    """The run's best checkpoint loaded into a fresh model (``weights_only=True``)."""
    from torchsuite.core.train import best_checkpoint, load_checkpoint, load_model_state

    path = best_checkpoint(run_dir)
    model = task.build_model()
    load_model_state(model, load_checkpoint(path), task=task.name, path=path)
    print(f"loaded {path}")
    return model.eval()


def planner_from_run(task: Any, ref: str | Path) -> nn.Module:
    """Run ``ref``'s planner, built with the architecture saved in that run's config.

    ``task`` supplies only the task class: the run may have been trained with another
    width or fusion than the current config says (earlier DAgger iterations).
    """
    from torchsuite.core import find_run, read_run_config, resolve_config

    run = find_run(ref, task.name)
    _, saved = read_run_config(run)
    return load_planner(type(task)(resolve_config(type(task).Config, base=saved)), run)
