"""torchrun: 2 CPU processes (gloo) train like one process with the same global batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from suite_testing import run_suite
from torchsuite.core.train import fit, latest_checkpoint, load_checkpoint
from torchsuite.core.train.logs import read_metrics

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

# No dropout and no augmentation noise: those draw per-rank random numbers by design.
COMMON = ["train.max_steps=12", "train.eval_every=6", "train.log_every=1", "optim.lr=0.01",
          "optim.warmup_steps=2", "train.progress=lines", "train.tensorboard=false",
          "model.dropout=0", "data.noise=0"]


def _train_records(run: Path) -> list[dict[str, Any]]:
    return [r for r in read_metrics(run / "metrics.jsonl") if "train.loss" in r]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gloo_processes_match_one_process(tiny_site: Path, tmp_path: Path, make_task: Any,
                                              strategy: str) -> None:
    ddp = tmp_path / strategy
    r = run_suite(["train", "tiny-train", *COMMON, "train.batch_size=4",
                   f"train.strategy={strategy}", "--nproc", "2", "--run-dir", str(ddp)],
                  cwd=tmp_path, pythonpath=[tiny_site], env={"OMP_NUM_THREADS": "1"}, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "torch.distributed.run" in r.stdout  # `--nproc` launched torchrun for the user

    single = fit(make_task(*COMMON, "train.batch_size=8"), tmp_path / "single")
    a, b = _train_records(ddp), _train_records(tmp_path / "single")
    assert [x["step"] for x in a] == list(range(1, 13))  # rank 0 alone writes: no duplicates
    for x, y in zip(a, b, strict=True):
        assert x["train.loss"] == pytest.approx(y["train.loss"], rel=1e-5, abs=1e-6)
    wa = load_checkpoint(latest_checkpoint(ddp))
    wb = load_checkpoint(latest_checkpoint(tmp_path / "single"))
    assert wa["world_size"] == 2 and len(wa["ranks"]) == 2
    for key, value in wb["model"].items():
        torch.testing.assert_close(wa["model"][key], value, rtol=1e-5, atol=1e-6)
    assert wa["metrics"]["dev.loss"] == pytest.approx(single.dev_metrics["dev.loss"], rel=1e-5)


def test_two_process_gan_keeps_ranks_in_sync(tiny_site: Path, tmp_path: Path) -> None:
    # gan-toy's validation_step all-gathers a weight checksum and fails if ranks differ,
    # which would happen if the per-phase gradient averaging were missing.
    run = tmp_path / "gan"
    r = run_suite(["train", "gan-toy", "train.max_steps=6", "train.eval_every=3",
                   "train.batch_size=16", "gan.n=128", "gan.n_critic=2", "train.grad_accum=2",
                   "train.progress=lines", "train.log_every=1", "--nproc", "2",
                   "--run-dir", str(run)],
                  cwd=tmp_path, pythonpath=[tiny_site], env={"OMP_NUM_THREADS": "1"},
                  timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    records = read_metrics(run / "metrics.jsonl")
    assert [x["step"] for x in records if "train.gen.loss" in x] == list(range(1, 7))
    assert sorted(load_checkpoint(latest_checkpoint(run))["optimizers"]) == ["disc", "gen"]


def test_two_process_run_stopped_by_sigterm_resumes(tiny_site: Path, tmp_path: Path,
                                                    make_task: Any) -> None:
    # Both ranks SIGTERM themselves in training_step call 7 (step 7): they agree to stop,
    # rank 0 saves one checkpoint with both ranks' data/RNG states, --resume continues.
    run = tmp_path / "ddp"
    env = {"OMP_NUM_THREADS": "1"}
    r = run_suite(["train", "tiny-train", *COMMON, "train.batch_size=4", "data.stop_at=7",
                   "--nproc", "2", "--run-dir", str(run)],
                  cwd=tmp_path, pythonpath=[tiny_site], env=env, timeout=600)
    assert r.returncode != 0
    saved = load_checkpoint(latest_checkpoint(run))
    assert saved["step"] == 7 and len(saved["ranks"]) == 2
    r = run_suite(["train", "tiny-train", "data.stop_at=0", "--nproc", "2", "--resume", str(run)],
                  cwd=tmp_path, pythonpath=[tiny_site], env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr

    fit(make_task(*COMMON, "train.batch_size=8"), tmp_path / "single")
    a, b = _train_records(run), _train_records(tmp_path / "single")
    assert [x["step"] for x in a] == list(range(1, 13))
    for x, y in zip(a, b, strict=True):
        assert x["train.loss"] == pytest.approx(y["train.loss"], rel=1e-5, abs=1e-6)
