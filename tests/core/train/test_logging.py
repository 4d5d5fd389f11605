"""metrics.jsonl, TensorBoard events and a progress display that degrades to plain lines."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from torchsuite.core.train import fit
from torchsuite.core.train.logs import Progress, read_metrics


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    p = Progress("auto", total=4, start=0, enabled=True, every=2, stream=out)
    for step in range(1, 5):
        p.update(step, 0.5 / step, 100.0)
    p.note("done")
    p.close()
    lines = out.getvalue().splitlines()
    assert p.mode == "lines"
    assert len(lines) == 3 and lines[-1] == "done"
    assert re.fullmatch(r"step 2/4 loss 0\.2500 [\d.]+ steps/s 100 samples/s eta \S+", lines[0])
    assert "\r" not in out.getvalue()


def test_progress_is_a_bar_on_a_terminal() -> None:
    out = _Terminal()
    p = Progress("auto", total=4, start=0, enabled=True, every=2, stream=out)
    for step in range(1, 5):
        p.update(step, 0.25, 50.0)
    p.close()
    assert p.mode == "bar"
    text = out.getvalue()
    assert "\r" in text and "4/4" in text and "loss=0.2500" in text


def test_progress_off_for_other_ranks() -> None:
    out = _Terminal()
    p = Progress("bar", total=4, start=0, enabled=False, every=1, stream=out)
    p.update(1, 0.1, 1.0)
    p.note("x")
    assert out.getvalue() == ""


def test_metrics_jsonl_and_tensorboard(make_task: Any, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(make_task("train.max_steps=6", "train.log_every=2", "train.eval_every=3",
                  "train.tensorboard=true", "train.progress=lines"), tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    train = [r for r in records if "train.loss" in r]
    assert [r["step"] for r in train] == [2, 4, 6]
    assert all({"lr", "grad_norm", "samples_per_s", "epoch"} <= set(r) for r in train)
    assert [r["step"] for r in records if "dev.loss" in r] == [3, 6]
    err = capsys.readouterr().err
    assert "step 6/6 loss" in err and "step 3: dev.loss" in err

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train.loss")] == [2, 4, 6]
    assert [e.value for e in events.Scalars("dev.loss")] == pytest.approx(
        [r["dev.loss"] for r in records if "dev.loss" in r])
