"""Load the trained model behind ``--from RUN`` / ``--teacher RUN``.

A run is rebuilt from its own ``config.toml`` (lifecycle sections dropped) plus
the command line's overrides, its best checkpoint is read with
``weights_only=True`` and loaded after a task and shape check. Every failure
(no such run, a run of another task, no checkpoint, a config that no longer fits
the weights) is a :class:`~torchsuite.core.errors.SuiteError` saying what to do.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..config import resolve_config
from ..errors import SuiteError
from ..registry import get_registry
from ..runs import find_run, read_run_config
from ..task import Task, TaskStatus
from ..train.checkpoint import best_checkpoint, load_checkpoint, load_model_state
from .sections import extend_config, strip_sections

__all__ = ["SourceRun", "load_source", "resolve_task", "task_config_from_run"]


@dataclass
class SourceRun:
    """A trained run brought back to life.

    Attributes:
        task: The task instance built with the run's config.
        model: The model with the run's best weights, in eval mode, on CPU.
        run_dir: The run directory.
        checkpoint: The checkpoint file the weights came from.
        step: The training step of that checkpoint (``-1`` when unknown).
    """

    task: Task[Any]
    model: nn.Module
    run_dir: Path
    checkpoint: Path
    step: int = -1


def _task_class(name: str) -> type[Task[Any]]:
    cls = get_registry().task(name)
    if cls.status != TaskStatus.READY:
        raise SuiteError(
            f"task '{name}' is a {cls.status}: it is registered but cannot run yet. "
            f"{cls.description}"
        )
    return cls


def task_config_from_run(
    task_name: str, ref: str | Path, flag: str = "--from"
) -> tuple[Path, dict[str, Any]]:
    """Find run ``ref`` of ``task_name`` and return it with its saved config dict.

    Raises:
        SuiteError: the run does not exist or belongs to another task.
    """
    try:
        run = find_run(ref, task_name)
    except SuiteError as exc:
        raise SuiteError(f"{flag} {ref}: {exc}") from None
    saved_task, saved = read_run_config(run)
    if saved_task and saved_task != task_name:
        raise SuiteError(
            f"{flag} {ref}: run '{run}' belongs to task '{saved_task}', not '{task_name}'. "
            f"Pick a run of '{task_name}' (`suite runs`) or run the verb on '{saved_task}'."
        )
    return run, strip_sections(saved)


def resolve_task(
    task_name: str,
    *,
    base: dict[str, Any] | None = None,
    files: Sequence[str] = (),
    overrides: Sequence[str] = (),
    section: str | None = None,
) -> Task[Any]:
    """Instantiate ``task_name`` with ``base`` <- files <- overrides, optionally with a
    lifecycle section (``finetune``/``distill``) added to its config class."""
    cls = _task_class(task_name)
    cfg_cls = extend_config(cls.Config, section) if section else cls.Config
    cfg = resolve_config(cfg_cls, files=files, overrides=overrides, base=base)
    return cls(cfg)


def load_source(
    task_name: str,
    ref: str | Path,
    *,
    files: Sequence[str] = (),
    overrides: Sequence[str] = (),
    section: str | None = None,
    flag: str = "--from",
) -> SourceRun:
    """Rebuild run ``ref`` of ``task_name`` with its best weights.

    Args:
        task_name: The task named on the command line.
        ref: Run directory, run name under ``runs/<task>/`` or ``latest``.
        files: Extra ``--config`` files applied over the run's config.
        overrides: ``key=value`` overrides applied last (must not change the model's
            shapes; a mismatch is reported).
        section: Lifecycle section to add to the config class.
        flag: The option name used in error messages.
    """
    run, saved = task_config_from_run(task_name, ref, flag)
    task = resolve_task(task_name, base=saved, files=files, overrides=overrides, section=section)
    ckpt_path = best_checkpoint(run)
    ckpt = load_checkpoint(ckpt_path)
    model = task.build_model()
    load_model_state(model, ckpt, task=task_name, path=ckpt_path)
    model.eval()
    return SourceRun(task, model, run, ckpt_path, int(ckpt.get("step", -1)))


def add_source_arguments(
    p: argparse.ArgumentParser, flag: str = "--from", dest: str = "from_run"
) -> None:
    """``--from RUN`` (required) with the shared help text."""
    p.add_argument(
        flag, dest=dest, required=True, metavar="RUN",
        help="run directory, run name under runs/<task>/, or 'latest'",
    )
