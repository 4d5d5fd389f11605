"""``suite train``: SIGTERM/SIGINT save a checkpoint, ``--resume RUN`` continues exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from suite_testing import run_suite
from torchsuite.core.train import fit, latest_checkpoint, load_checkpoint
from torchsuite.core.train.logs import read_metrics

# The same settings as the conftest `make_task` base, so in-process runs compare.
BASE = ["train.eval_every=10", "train.log_every=1", "train.batch_size=8", "optim.lr=0.01",
        "optim.warmup_steps=2", "train.progress=lines", "train.tensorboard=false",
        "train.max_steps=30"]


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["train.loss"] for r in read_metrics(run / "metrics.jsonl")
            if "train.loss" in r}


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Bit-exact comparisons need the same intra-op thread count as the OMP_NUM_THREADS=1 child."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _env(site: Path) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.mark.parametrize("resume_via", ["fit", pytest.param("cli", marks=pytest.mark.slow)])
def test_sigterm_saves_and_resume_continues_exactly(tiny_site: Path, tmp_path: Path,
                                                    make_task: Any, resume_via: str,
                                                    one_thread: None) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchsuite.core.cli", "train", "tiny-train", *BASE,
         "data.sleep=0.05", "--run-dir", str(run)],
        cwd=tmp_path, env=_env(tiny_site), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    metrics = run / "metrics.jsonl"
    while not (metrics.is_file() and len(_losses(run)) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    last = latest_checkpoint(run)
    assert last is not None
    k = load_checkpoint(last)["step"]
    assert 3 <= k < 30
    assert f"stopped by SIGTERM at step {k}" in out and f"--resume {run}" in out

    if resume_via == "cli":  # `suite train TASK --resume RUN`
        # (key=value words go before --options: argparse stops collecting them after one)
        r = run_suite(["train", "tiny-train", "data.sleep=0", "--resume", str(run)],
                      cwd=tmp_path, pythonpath=[tiny_site], env={"OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"resumed from {last} at step {k}" in r.stderr
    else:
        assert fit(make_task(*BASE), run, resume_from=run).steps == 30

    full = fit(make_task(*BASE), tmp_path / "full")
    assert full.steps == 30
    a, b = _losses(tmp_path / "full"), _losses(run)
    assert sorted(b) == list(range(1, 31))
    assert all(a[s] == b[s] for s in a), [(s, a[s], b[s]) for s in a if a[s] != b[s]]


def test_sigint_saves_before_exit(make_task: Any, tmp_path: Path) -> None:
    # The handler in place before (default, or SIG_IGN under nohup / a background job).
    before = signal.getsignal(signal.SIGINT)
    res = fit(make_task("train.max_steps=20", "data.stop_at=5", "data.stop_signal=SIGINT"),
              tmp_path)
    assert res.interrupted == signal.SIGINT and res.steps == 5
    assert latest_checkpoint(tmp_path).name == "step-5.pt"
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    again = fit(make_task("train.max_steps=20"), tmp_path, resume_from=tmp_path)
    assert again.steps == 20 and not again.interrupted


@pytest.mark.slow
def test_resume_refuses_a_run_of_another_task(tiny_site: Path, tmp_path: Path) -> None:
    r = run_suite(["train", "gan-toy", "train.max_steps=2", "train.progress=off", "gan.n=64",
                   "--run-dir", str(tmp_path / "g")], cwd=tmp_path, pythonpath=[tiny_site])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_suite(["train", "tiny-train", "--resume", str(tmp_path / "g")], cwd=tmp_path,
                  pythonpath=[tiny_site])
    assert r.returncode == 2
    assert "belongstotask'gan-toy',not'tiny-train'" in "".join(r.stderr.split())
    assert "Traceback" not in r.stderr
