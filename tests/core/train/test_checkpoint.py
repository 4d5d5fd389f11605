"""Checkpoint files: atomic writes, retention (last K + best), clear errors on mismatch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torchsuite.core.errors import SuiteError
from torchsuite.core.train import fit, latest_checkpoint, load_checkpoint
from torchsuite.core.train.checkpoint import atomic_save, save_checkpoint, step_checkpoints


def _state(value: float) -> dict[str, Any]:
    return {"format": 1, "task": "t", "model": {"w": torch.full((64, 64), value)}}


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(_state(1.0), tmp_path, 1, is_best=True, keep_last=2)

    def torn_save(obj: Any, fh: Any) -> None:
        fh.write(b"PK\x03\x04 half a zip")  # a crash in the middle of writing
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save(_state(2.0), path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((64, 64), 1.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt", "step-1.pt"]  # no temp


def test_sigkill_during_save_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    script = textwrap.dedent(f"""
        import sys, torch
        from torchsuite.core.train.checkpoint import atomic_save
        i = 0
        while True:
            i += 1
            atomic_save({{"model": {{"w": torch.full((1024, 1024), float(i))}}, "i": i}},
                        {str(target)!r})
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "1", "the child never completed a save"
        time.sleep(0.3)  # a 4 MB save is in flight most of the time
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    ckpt = load_checkpoint(target)
    assert torch.equal(ckpt["model"]["w"], torch.full((1024, 1024), float(ckpt["i"])))


def test_keep_last_k_and_best(make_task: Any, tmp_path: Path) -> None:
    # monitor_mode=max on dev.loss makes an early evaluation the "best" one, so best.pt
    # must outlive the pruning of its step file.
    res = fit(make_task("train.max_steps=12", "train.eval_every=2", "train.keep_last=2",
                        "train.monitor_mode=max"), tmp_path)
    steps = [s for s, _ in step_checkpoints(tmp_path)]
    assert steps == [10, 12]
    assert res.best_step is not None and res.best_step < 10
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["step"] == res.best_step
    assert best["metrics"]["dev.loss"] == pytest.approx(res.best_metric)


def test_load_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "obj": SuiteError("x")}, path)
    with pytest.raises(SuiteError, match="cannot be read"):
        load_checkpoint(path)


def test_resume_with_incompatible_model_config(make_task: Any, tmp_path: Path) -> None:
    fit(make_task("train.max_steps=4"), tmp_path)
    with pytest.raises(SuiteError, match=r"shape mismatch.*model.*overrides"):
        fit(make_task("train.max_steps=8", "model.hidden=8"), tmp_path, resume_from=tmp_path)


def test_resume_with_other_optimizer(make_task: Any, tmp_path: Path) -> None:
    fit(make_task("train.max_steps=4"), tmp_path)
    with pytest.raises(SuiteError, match=r"optim\.name=adamw"):
        fit(make_task("train.max_steps=8", "optim.name=sgd"), tmp_path, resume_from=tmp_path)


def test_checkpoint_of_another_task(make_task: Any, make_gan: Any, tmp_path: Path) -> None:
    fit(make_gan("train.max_steps=2"), tmp_path / "gan")
    with pytest.raises(SuiteError, match="written by task 'gan-toy', not 'tiny-train'"):
        fit(make_task("train.max_steps=4"), tmp_path / "t", resume_from=tmp_path / "gan")


def test_resume_from_a_run_without_checkpoints(make_task: Any, tmp_path: Path) -> None:
    fit(make_task("train.max_steps=2", "train.checkpoints=false"), tmp_path)
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(SuiteError, match="no checkpoints"):
        fit(make_task("train.max_steps=4"), tmp_path, resume_from=tmp_path)
