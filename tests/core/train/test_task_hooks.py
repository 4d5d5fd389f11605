"""``Task.on_fit_end``: the task's epilogue runs once after a finished fit, never after a stop."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from torch import nn
from torchsuite.core.train import fit


def _recording(task: Any) -> list[tuple[Path, nn.Module | None]]:
    calls: list[tuple[Path, nn.Module | None]] = []
    task.on_fit_end = lambda run_dir, model=None: calls.append((run_dir, model))
    return calls


def test_on_fit_end_gets_the_run_dir_and_the_trained_model(make_task: Any,
                                                           tmp_path: Path) -> None:
    task = make_task("train.max_steps=6")
    calls = _recording(task)
    fit(task, tmp_path)
    assert len(calls) == 1
    run_dir, model = calls[0]
    assert run_dir == tmp_path and isinstance(model, nn.Module)
    assert not isinstance(model, nn.parallel.DistributedDataParallel)


def test_on_fit_end_is_skipped_when_training_was_interrupted(make_task: Any,
                                                             tmp_path: Path) -> None:
    task = make_task("train.max_steps=20", "data.stop_at=3", "data.stop_signal=SIGINT")
    calls = _recording(task)
    assert fit(task, tmp_path).interrupted == signal.SIGINT
    assert calls == []
