"""``suite runs`` (best dev metric per run) and ``suite plot`` (PNG of the curves)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from torchsuite.core.errors import SuiteError
from torchsuite.core.train import fit
from torchsuite.core.train.commands import _plot, _runs
from torchsuite.core.train.report import summarize_run


def test_runs_lists_best_dev_metric_and_plot_writes_png(
        make_task: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # runs/ is relative to the working directory
    run = Path("runs") / "tiny-train" / "first"
    res = fit(make_task("train.max_steps=8", "train.eval_every=2"), run)
    capsys.readouterr()
    s = summarize_run(run)
    assert (s.task, s.name, s.steps, s.monitor) == ("tiny-train", "first", 8, "dev.loss")
    assert s.best == pytest.approx(res.best_metric) and s.best_step == res.best_step

    assert _runs(argparse.Namespace(task=None)) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["TASK", "RUN", "STEPS", "METRIC", "BEST"]
    assert table[1].split()[:6] == ["tiny-train", "first", "8", "dev.loss",
                                    f"{res.best_metric:.4f}", str(res.best_step)]

    pytest.importorskip("matplotlib")
    assert _plot(argparse.Namespace(run="first", task="tiny-train", out=None)) == 0
    png = run / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert f"wrote {png}" in capsys.readouterr().out


def test_plot_of_an_empty_run(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("")
    with pytest.raises(SuiteError, match="nothing to plot"):
        _plot(argparse.Namespace(run=str(tmp_path), task=None, out=None))
