"""Entry point of the driving plugin (suite.plugins group). Keep imports light here:
`suite tasks` imports every plugin module; the simulator and model load on first use."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from torchsuite.core import CommandSet, Task, hookimpl


def _evaluate(args: argparse.Namespace) -> int:
    from .commands import evaluate

    return evaluate(args)


def _replay(args: argparse.Namespace) -> int:
    from .commands import replay

    return replay(args)


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    from .commands import configure_evaluate

    configure_evaluate(p)


def _configure_replay(p: argparse.ArgumentParser) -> None:
    from .commands import configure_replay

    configure_replay(p)


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    from .task import DrivingTask

    register(DrivingTask)


@hookimpl
def register_commands(cli: CommandSet) -> None:
    # `suite drive ...` (the name) and `suite driving ...` (the task's name) are
    # the same verbs, so either spelling works.
    for group in ("drive", "driving"):
        alias = " (same as `suite drive`)" if group == "driving" else ""
        cli.add_group(group, "closed-loop driving: evaluate a trained planner, replay a "
                             f"scenario{alias}")
        cli.add_command("evaluate", group=group, run=_evaluate, configure=_configure_evaluate,
                        help="closed-loop table: learned planner vs expert vs baseline "
                             "(+ablations), plots in the run's samples/")
        cli.add_command("replay", group=group, run=_replay, configure=_configure_replay,
                        help="animated GIF of one scenario: bird's-eye view, camera inset, plan")
