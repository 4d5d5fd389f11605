"""Arguments shared by the task verbs (``train``, ``eval``, ``finetune``, ...).

Plugins adding their own verbs reuse these so every verb accepts config the
same way: ``--config FILE`` (repeatable), ``--set key=value`` and bare
``key=value`` words.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .config import resolve_config
from .errors import SuiteError
from .registry import get_registry
from .runs import find_run, read_run_config
from .task import Task, TaskStatus

__all__ = ["add_config_arguments", "add_task_argument", "build_task", "task_from_run"]


def add_task_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="task name (see `suite tasks`)")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--set`` and positional ``key=value`` overrides."""
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. train.max_steps=100 model.d_model=256",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="TOML config file (repeatable; later files win)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="set_",
        metavar="KEY=VALUE",
        help="config override (same as a bare KEY=VALUE)",
    )


def _overrides(args: argparse.Namespace) -> list[str]:
    return [*getattr(args, "overrides", []), *getattr(args, "set_", [])]


def build_task(
    task_name: str,
    args: argparse.Namespace,
    *,
    base: dict[str, Any] | None = None,
    require_ready: bool = True,
) -> Task[Any]:
    """Resolve the task's config from the parsed arguments and instantiate the task."""
    cls = get_registry().task(task_name)
    if require_ready and cls.status != TaskStatus.READY:
        raise SuiteError(
            f"task '{task_name}' is a {cls.status}: it is registered but cannot run yet. "
            f"{cls.description}"
        )
    cfg = resolve_config(cls.Config, files=args.config, overrides=_overrides(args), base=base)
    return cls(cfg)


def task_from_run(
    ref: str | Path, args: argparse.Namespace, expected_task: str | None = None
) -> tuple[Task[Any], Path]:
    """Rebuild the task of an existing run with its saved config (plus any overrides)."""
    run = find_run(ref, expected_task)
    saved_task, saved_cfg = read_run_config(run)
    if expected_task and saved_task and saved_task != expected_task:
        raise SuiteError(
            f"run '{run}' belongs to task '{saved_task}', not '{expected_task}'. "
            f"Use `suite ... {saved_task} --from {run}` or pick a run of '{expected_task}'."
        )
    return build_task(saved_task or str(expected_task), args, base=saved_cfg), run
