"""`suite finetune music` trains a run further on the held-apart target style."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torchsuite.core import write_run_config
from torchsuite.core.cli import main as suite
from torchsuite.core.data.shards import DatasetWriter
from torchsuite.core.train import fit
from torchsuite.plugins.music.events import GRID, Note, Piece
from torchsuite.plugins.music.task import MusicConfig, MusicTask


def _piece(seed: int, style: str) -> Piece:
    rng = np.random.default_rng(seed)
    dur, base = (4, 72) if style == "bach" else (2, 60)
    notes = [Note(t, 0, base + int(rng.integers(12)), dur) for t in range(0, 4 * 4 * GRID, dur)]
    return Piece(notes, style=style, name=f"{style}-{seed}")


@pytest.mark.slow
def test_finetune_on_the_target_style(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = MusicConfig()
    cfg.data.dir = str(tmp_path / "data")
    cfg.data.target_style = "folk"
    cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads, cfg.model.d_ff = 32, 1, 2, 64
    cfg.model.seq_len = 64
    cfg.train.max_steps, cfg.train.batch_size, cfg.train.progress = 6, 8, "off"
    cfg.sample.bars = 2
    task = MusicTask(cfg)
    with DatasetWriter(cfg.data.dir, meta={"vocab_size": task.tok.vocab_size}) as w:
        for seed in range(12):
            for style, split in (("bach", "train" if seed < 9 else "dev"), ("folk", "target")):
                w.add({"tokens": np.asarray(task.tok.encode(_piece(seed, style)), np.int16),
                       "name": f"{style}-{seed}", "style": style, "lyrics": ""},
                      split=split, group=f"{style}-{seed}")
    run = tmp_path / "runs" / "music" / "src"
    run.mkdir(parents=True)
    write_run_config(run, cfg, "music")
    fit(task, run)
    capsys.readouterr()
    assert suite(["finetune", "music", "--from", str(run), "--name", "ft",
                  "train.max_steps=8", "optim.warmup_steps=1"]) == 0
    out_run = tmp_path / "runs" / "music" / "ft"
    report = json.loads((out_run / "transfer.json").read_text())
    before, after = report["before"], report["after"]
    target = next(k for k in before if k.startswith("target"))
    assert after[target]["nll"] < before[target]["nll"]  # it adapted to the target style
    assert "unigram_nll" in after[target]
    assert (out_run / "samples" / "sample-folk.mid").is_file()  # a sample in the new style
