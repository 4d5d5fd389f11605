"""Bit-exact resume on CPU: interrupted at step k + resumed == uninterrupted, step by step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torchsuite.core.train import fit, latest_checkpoint, load_checkpoint
from torchsuite.core.train.logs import read_metrics


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["train.loss"] for r in read_metrics(run / "metrics.jsonl")
            if "train.loss" in r}


def _interrupt_and_resume(make_task: Any, tmp_path: Path, *overrides: str) -> dict[str, Any]:
    """Run 14 steps straight, and 6 + resume + 8; assert both agree; the step-6 checkpoint."""
    steps = "train.max_steps=14"
    # grad_accum=2: training_step call 11 happens in optimizer step 6.
    common = ["train.grad_accum=2", steps, *overrides]
    full = fit(make_task(*common), tmp_path / "full")
    assert full.steps == 14 and not full.interrupted

    part = fit(make_task(*common, "data.stop_at=11"), tmp_path / "part")
    assert part.interrupted and part.steps == 6
    assert latest_checkpoint(tmp_path / "part").name == "step-6.pt"
    saved = load_checkpoint(latest_checkpoint(tmp_path / "part"))
    resumed = fit(make_task(*common), tmp_path / "part", resume_from=tmp_path / "part")
    assert resumed.steps == 14

    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "part")
    assert sorted(a) == sorted(b) == list(range(1, 15))
    assert all(a[s] == b[s] for s in a), [(s, a[s], b[s]) for s in a if a[s] != b[s]]
    wa = load_checkpoint(latest_checkpoint(tmp_path / "full"))["model"]
    wb = load_checkpoint(latest_checkpoint(tmp_path / "part"))["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert full.dev_metrics == resumed.dev_metrics
    return saved


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_bit_exact_resume_map_style(make_task: Any, tmp_path: Path, workers: int) -> None:
    # 72 samples / batch 8 = 9 batches per epoch: the run crosses epochs mid-accumulation
    _interrupt_and_resume(make_task, tmp_path, f"train.num_workers={workers}")


def test_bit_exact_resume_stateful_iterable(make_task: Any, tmp_path: Path) -> None:
    _interrupt_and_resume(make_task, tmp_path, "data.kind=stream")


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_bit_exact_resume_shard_stream(make_task: Any, tmp_path: Path, workers: int) -> None:
    data = pytest.importorskip("torchsuite.core.data")
    if not hasattr(data, "StreamLoader"):
        pytest.skip("core.data has no StreamLoader yet")
    gen = torch.Generator().manual_seed(3)
    with data.DatasetWriter(tmp_path / "shards", salt="t") as w:
        for i in range(72):
            x = torch.randn(4, generator=gen)
            w.add({"x": x, "y": x.sum(0, keepdim=True)}, split="train", group=str(i))
    saved = _interrupt_and_resume(make_task, tmp_path, "data.kind=shards",
                                  f"data.dir={str(tmp_path / 'shards')!r}",
                                  f"train.num_workers={workers}")
    # the ShardStream's own state travels in the checkpoint: 12 batches of 8 from 72
    # records = epoch 1, 24 records in
    data = saved["ranks"][0]["data"]
    assert data["epoch"] == 1 and data["batch_in_epoch"] == 3
    assert data["loader"]["epoch"] == 1 and data["loader"]["consumed"] == 24
    assert data["loader"]["dataset_id"]


def test_resumed_metrics_have_no_stale_records(make_task: Any, tmp_path: Path) -> None:
    run = tmp_path / "r"
    fit(make_task("train.max_steps=8", "data.stop_at=3"), run)  # interrupted after step 3
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 5, "train.loss": 123.0}\n')  # as if logged after the last save
    fit(make_task("train.max_steps=8"), run, resume_from=run)
    records = read_metrics(run / "metrics.jsonl")
    assert 123.0 not in [r.get("train.loss") for r in records]
    assert any(r.get("event") == "resumed" and r["step"] == 3 for r in records)
