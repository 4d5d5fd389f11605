"""The learned planner as a closed-loop policy, and loading it from a run directory."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .drives import HISTORY_DT, MODEL_INPUTS, relative_pose
from .expert import TARGET_SPEED_DT, Plan
from .safety import Guard
from .sim.world import World

__all__ = ["ABLATABLE", "LearnedPolicy", "command_accel", "load_planner", "planner_from_run"]

#: Sensors an ablation may remove (zero); the route is the navigation goal, not a sensor.
ABLATABLE = ("camera", "lidar", "radar", "imu")


def command_accel(target_speed: float, accel: float, speed: float) -> float:
    """The acceleration a plan asks of the tracker, from the planner's two longitudinal
    outputs.

    The labels tie them together: the target speed is the speed the expert means to have
    :data:`~.expert.TARGET_SPEED_DT` from now, ``v + a·dt`` (0 when it stops). The network
    regresses each head on its own, and where the data disagree they disagree too: at a
    standstill on a free road one planner predicted 0.8 m/s *and* -1.1 m/s² and never
    started again; it stood until the time limit in 7 of 32 held-out scenarios, 3 with
    this command. The target speed is the head that says where to go; the acceleration
    head only says how hard to stop once the target is 0.

    Args:
        target_speed: Predicted speed ``TARGET_SPEED_DT`` ahead (m/s, >= 0).
        accel: Predicted acceleration (m/s²).
        speed: Current speed (m/s).
    """
    if target_speed > 0.0:
        return (target_speed - speed) / TARGET_SPEED_DT
    return min(accel, -speed / TARGET_SPEED_DT)


class LearnedPolicy:
    """Runs the fusion planner on the current sensor frame (batch 1, CPU).

    One instance drives one scenario: it keeps the LiDAR sweeps of the last
    :data:`~.drives.HISTORY_DT` seconds with the ego pose each was taken at (from the
    world's localization), for planners that read the earlier sweep.
    """

    uses_sensors = True

    def __init__(self, model: nn.Module, drop: tuple[str, ...] = (), name: str = "learned",
                 guards: Sequence[Guard] = ()) -> None:
        self.model = model.eval()
        # Removing the LiDAR removes its earlier sweep (and where it was taken) too.
        self.drop = set(drop) | ({"lidar_prev", "prev_pose"} if "lidar" in drop else set())
        self.name = name
        self.guards = list(guards)
        self._sweeps: deque[tuple[float, np.ndarray, np.ndarray]] = deque()

    def _history(self, world: World | None, lidar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sweep :data:`HISTORY_DT` ago (the oldest one kept before that) and its pose
        in the current ego frame; the current sweep at the start of a drive."""
        if world is None:  # a single frame without a world: no motion known
            return lidar, np.zeros(3, np.float32)
        e = world.ego
        now = np.array([e.x, e.y, e.yaw])
        self._sweeps.append((world.t, np.asarray(lidar), now))
        while len(self._sweeps) > 1 and self._sweeps[1][0] <= world.t - HISTORY_DT + 1e-6:
            self._sweeps.popleft()
        _, past, pose = self._sweeps[0]
        return past, relative_pose(pose, now)

    @torch.no_grad()
    def act(self, world: World, obs: dict[str, np.ndarray]) -> Plan:
        lidar_prev, prev_pose = self._history(world, obs["lidar"])
        frame = {**obs, "lidar_prev": lidar_prev, "prev_pose": prev_pose}
        inputs = []
        for k in MODEL_INPUTS:
            x = torch.as_tensor(np.asarray(frame[k]))[None]
            inputs.append(torch.zeros_like(x) if k in self.drop else x)
        wp, speed, accel = self.model(*inputs)
        target = max(float(speed[0]), 0.0)
        plan = Plan(wp[0].numpy().astype(np.float64), target,
                    command_accel(target, float(accel[0]), float(obs["imu"][0])))
        for guard in self.guards:
            plan = guard(plan, frame, float(obs["imu"][0]))
        return plan


def load_planner(task: Any, run_dir: Path, quiet: bool = False) -> nn.Module:
    """The run's best checkpoint loaded into a fresh model (``weights_only=True``).

    Args:
        task: The driving task (builds the model).
        run_dir: The run directory.
        quiet: Do not print which checkpoint was loaded (worker processes).
    """
    from torchsuite.core.train import best_checkpoint, load_checkpoint, load_model_state

    path = best_checkpoint(run_dir)
    model = task.build_model()
    load_model_state(model, load_checkpoint(path), task=task.name, path=path)
    if not quiet:
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
