"""``music-audio-gan``: the adversarial sound-source model through the multi-optimizer Trainer."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torchsuite.core.config import resolve_config, to_dict
from torchsuite.core.train import fit
from torchsuite.core.train.checkpoint import best_checkpoint, load_checkpoint
from torchsuite.plugins.music.audio.gan import (
    MusicAudioGanConfig,
    MusicAudioGanTask,
    SpectrogramDiscriminator,
)
from torchsuite.plugins.music.audio.inference import load_run, synthesize_line
from torchsuite.plugins.music.audio.notes import Line, NoteEvent


def test_discriminator_scores_every_scale_and_exposes_features() -> None:
    disc = SpectrogramDiscriminator([256, 64], channels=4)
    out = disc(torch.randn(2, 4000))
    assert len(out) == 2
    for scores, feats in out:
        assert scores.shape[:2] == (2, 1) and len(feats) == 4


def test_gan_trains_both_optimizers_and_its_run_synthesizes(prepared, tmp_path: Path,
                                                           tiny_cfg) -> None:
    cfg = resolve_config(MusicAudioGanConfig, base=to_dict(tiny_cfg(tmp_path)), overrides=[
        f"data.dir={json.dumps(str(prepared.data_dir))}", "train.max_steps=3",
        "train.log_every=1", "train.eval_task_metrics=false", "gan.fft_sizes=[256, 64]",
        "gan.channels=4"])
    task = MusicAudioGanTask(cfg)
    run = tmp_path / "gan"
    result = fit(task, run)
    assert result.steps == 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = {k for r in rows for k in r}
    assert {"train.disc.loss", "train.gen.loss", "train.gen.fm", "train.gen.adv"} <= logged
    ckpt = load_checkpoint(best_checkpoint(run))
    assert set(ckpt["optimizers"]) == {"disc", "gen"}
    assert any(k.startswith("disc.") for k in ckpt["model"])

    lm = load_run(run)  # the generator alone, like a music-audio run
    audio, _ = synthesize_line(lm, Line("x", [NoteEvent(60, 0.0, 0.4)]), "tone-bright")
    assert audio.shape[0] > 0 and torch.isfinite(audio).all()

