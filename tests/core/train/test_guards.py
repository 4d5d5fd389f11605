"""NaN/Inf guard and early stopping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torchsuite.core.train import TrainingDiverged, fit, latest_checkpoint, load_checkpoint
from torchsuite.core.train.logs import read_metrics


def test_nan_loss_stops_with_last_good_checkpoint_intact(make_task: Any, tmp_path: Path) -> None:
    task = make_task("train.max_steps=20", "train.eval_every=0", "train.checkpoint_every=3",
                     "data.nan_at=8")
    with pytest.raises(TrainingDiverged, match=r"diverged at step 8.*step-6\.pt.*--resume"):
        fit(task, tmp_path)
    last = latest_checkpoint(tmp_path)
    assert last is not None and last.name == "step-6.pt"
    ckpt = load_checkpoint(last)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[-1]["event"] == "diverged" and records[-1]["step"] == 8
    assert max(r["step"] for r in records if "train.loss" in r and "event" not in r) == 7


def test_early_stopping_with_patience(make_task: Any, tmp_path: Path) -> None:
    # Asking for the *largest* dev loss: after the first evaluation training only makes
    # it smaller, so two evaluations without improvement stop the run.
    res = fit(make_task("train.max_steps=100", "train.eval_every=2", "train.patience=2",
                        "train.monitor=loss", "train.monitor_mode=max", "optim.lr=0.03"),
              tmp_path)
    assert res.stopped_early
    assert res.steps < 100
    assert res.steps == res.best_step + 2 * 2


def test_unknown_monitor_metric(make_task: Any, tmp_path: Path) -> None:
    from torchsuite.core.errors import SuiteError

    with pytest.raises(SuiteError, match=r"dev\.bleu.*not among the dev metrics.*dev\.mae"):
        fit(make_task("train.max_steps=4", "train.monitor=bleu"), tmp_path)
