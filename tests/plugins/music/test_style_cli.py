"""`suite music style-eval` and `suite music stylize` end to end on a tiny two-style run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torchsuite.core import write_run_config
from torchsuite.core.cli import main as suite
from torchsuite.core.data.shards import DatasetWriter
from torchsuite.core.train import fit
from torchsuite.plugins.music.events import GRID, Note, Piece, write_midi
from torchsuite.plugins.music.task import MusicConfig, MusicTask


def _piece(seed: int, style: str) -> Piece:
    rng = np.random.default_rng(seed)
    high = style == "bach"
    dur, base = (4, 72) if high else (2, 48)
    notes = [Note(t, 0, base + int(rng.integers(12)), dur) for t in range(0, 2 * 4 * GRID, dur)]
    notes += [Note(t, 1, base - 12 + int(rng.integers(12)), 8) for t in range(0, 2 * 4 * GRID, 8)]
    return Piece(sorted(notes), style=style, name=f"{style}-{seed}")


@pytest.fixture
def two_style_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    cfg = MusicConfig()
    cfg.data.dir = str(tmp_path / "data")
    cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads, cfg.model.d_ff = 32, 1, 2, 64
    cfg.model.seq_len = 64
    cfg.train.max_steps, cfg.train.batch_size, cfg.train.progress = 6, 8, "off"
    cfg.sample.after_train = False
    task = MusicTask(cfg)
    with DatasetWriter(cfg.data.dir, meta={"vocab_size": task.tok.vocab_size}) as w:
        for seed in range(16):
            for style in ("bach", "irish"):
                split = "test" if seed >= 13 else "train"
                w.add({"tokens": np.asarray(task.tok.encode(_piece(seed, style)), np.int16),
                       "name": f"{style}-{seed}", "style": style, "lyrics": ""},
                      split=split, group=f"{style}-{seed}")
    run = tmp_path / "runs" / "music" / "two"
    run.mkdir(parents=True)
    write_run_config(run, cfg, "music")
    fit(task, run)
    return run


@pytest.mark.slow
def test_style_eval_and_stylize(two_style_run: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    run = two_style_run
    assert suite(["music", "style-eval", "--from", str(run), "--pieces", "2",
                  "--steps", "40"]) == 0
    report = json.loads((run / "style_eval.json").read_text())
    assert report["classifier_accuracy"] >= 0.8  # the styles differ in register and rhythm
    assert set(report["targets"]) == {"bach", "irish"}
    for row in report["targets"].values():
        assert row["pieces"] == 2 and row["melody_kept"] == 1.0
        assert 0.0 <= row["target_rate"] <= 1.0
    assert len(list((run / "samples" / "style-transfer").glob("*.mid"))) == 4
    src = tmp_path / "in.mid"
    write_midi(_piece(99, "bach"), src)
    capsys.readouterr()
    assert suite(["music", "stylize", str(src), "--to", "irish", "--from", str(run),
                  "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "kept the melody (100% of its notes)" in out and "style classifier" in out
    assert (tmp_path / "o" / "in-to-irish.mid").is_file()
    assert suite(["music", "stylize", str(tmp_path / "missing.mid"), "--to", "irish",
                  "--from", str(run)]) == 2
