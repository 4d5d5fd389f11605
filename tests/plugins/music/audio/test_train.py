"""Training through the core Trainer, the quality report, synthesis, transfer and finetune."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from suite_testing import run_suite
from torchsuite.core.errors import SuiteError
from torchsuite.core.train import fit
from torchsuite.plugins.music.audio.audio_io import load_audio
from torchsuite.plugins.music.audio.commands import run_synthesize, run_transfer
from torchsuite.plugins.music.audio.features import cents_between, f0_and_voicing
from torchsuite.plugins.music.audio.task import MusicAudioTask


@pytest.fixture(scope="module")
def trained(prepared: MusicAudioTask, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the tiny task: 6 steps through the core Trainer."""
    run = tmp_path_factory.mktemp("runs") / "music-audio" / "tiny"
    result = fit(prepared, run)
    assert result.steps == prepared.cfg.train.max_steps
    assert torch.isfinite(torch.tensor(result.last_loss))
    return run


def test_run_has_checkpoint_metrics_and_the_quality_report(prepared, trained: Path) -> None:
    assert (trained / "checkpoints" / "best.pt").is_file()
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    assert any('"train.loss"' in line for line in lines)
    model = prepared.build_model()
    from torchsuite.core.train.checkpoint import best_checkpoint, load_checkpoint

    model.load_state_dict(load_checkpoint(best_checkpoint(trained))["model"])
    report = prepared.evaluate(model, "train")
    for key in ("model.mrstft", "griffinlim.mrstft", "griffinlim_mel.mrstft", "sine.mrstft",
                "model.logmel_l1", "f0.model_cents", "f0.real_cents", "voice_clf.real_acc",
                "voice_clf.transfer_acc"):
        assert key in report, key
    # The references bracket the problem: true-magnitude Griffin-Lim is far closer to the
    # real audio than a bare sine on the notes.
    assert report["griffinlim.mrstft"] < report["sine.mrstft"]
    assert report["griffinlim.logmel_l1"] < report["sine.logmel_l1"]
    assert report["f0.real_cents"] < 20.0  # rendered audio matches its notes


def test_training_lowers_the_loss_on_a_fixed_batch(prepared, tmp_path: Path, tiny_cfg) -> None:
    from torchsuite.core.train.checkpoint import latest_checkpoint, load_checkpoint

    task = MusicAudioTask(tiny_cfg(tmp_path, data__dir=str(prepared.data_dir),
                                   train__max_steps=25, optim__lr=5e-3, optim__warmup_steps=0,
                                   augment__loudness_dropout=0.0))
    torch.manual_seed(0)
    model = task.build_model()
    ds = task.datasets()["train"]
    batch = task.collate([ds[i] for i in range(4)])
    with torch.no_grad():
        before = float(task.validation_step(model.eval(), batch).loss)
    fit(task, tmp_path / "run")
    last = latest_checkpoint(tmp_path / "run")
    assert last is not None
    model.load_state_dict(load_checkpoint(last)["model"])
    with torch.no_grad():
        after = float(task.validation_step(model.eval(), batch).loss)
    assert after < before - 0.1


def _ns(**kw: object) -> argparse.Namespace:
    base = {"from_run": None, "out": None, "seed": 0, "part": None, "transpose": 0.0}
    return argparse.Namespace(**{**base, **kw})


def test_synthesize_and_transfer_write_wav_and_png(trained: Path, tmp_path: Path, tone,
                                                   write_melody, capsys) -> None:
    import soundfile as sf

    midi = write_melody(tmp_path / "tune.mid", [60, 64, 67, 72], step=0.3)
    assert run_synthesize(_ns(midi=str(midi), voice="tone-bright", from_run=str(trained))) == 0
    wav = trained / "samples" / "synth-tune-tone-bright.wav"
    assert wav.is_file() and wav.with_suffix(".png").is_file()
    audio = load_audio(wav, 16000)
    assert 1.2 <= audio.shape[0] / 16000 <= 2.0  # 4 notes x 0.3 s + 0.5 s tail
    assert str(wav) in capsys.readouterr().out

    rec, _ = tone([220.0, 330.0], 0.5, sr=22050)
    sf.write(str(tmp_path / "me.wav"), rec.numpy(), 22050)
    out = tmp_path / "me-hollow.wav"
    assert run_transfer(_ns(audio=str(tmp_path / "me.wav"), voice="tone-hollow",
                            from_run=str(trained), out=str(out))) == 0
    moved = load_audio(out, 16000, allow_silent=True)
    assert abs(moved.shape[0] - 16000) <= 128
    # Nothing is overwritten: the same output again is refused.
    with pytest.raises(SuiteError, match="already exists"):
        run_transfer(_ns(audio=str(tmp_path / "me.wav"), voice="tone-hollow",
                         from_run=str(trained), out=str(out)))
    with pytest.raises(SuiteError, match="tone-bright, tone-hollow"):
        run_transfer(_ns(audio=str(tmp_path / "me.wav"), voice="tuba", from_run=str(trained)))


def test_transfer_keeps_the_pitch_contour_of_the_input(trained: Path, tone) -> None:
    """The harmonic oscillator is locked to the input's f0, so even a barely trained model
    reproduces the recording's pitch where it makes sound."""
    from torchsuite.plugins.music.audio.inference import load_run, transfer_audio

    lm = load_run(trained)
    rec, _ = tone([196.0, 294.0], 0.6)
    out = transfer_audio(lm, rec, "tone-hollow")
    f0_in, v_in = f0_and_voicing(rec, lm.spec)
    f0_out = f0_and_voicing(out, lm.spec, min_periodicity=0.0)[0]
    cents = cents_between(f0_out[v_in], f0_in[v_in])
    assert float(cents.median()) < 30.0


@pytest.mark.slow  # a fresh interpreter: ~10 s on a busy 2-core machine
def test_cli_refuses_an_unknown_voice_in_one_paragraph(trained: Path, tmp_path: Path,
                                                       write_melody) -> None:
    midi = write_melody(tmp_path / "t.mid", [60, 62])
    proc = run_suite(["music", "synthesize", str(midi), "--voice", "tuba", "--from",
                      str(trained)], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "unknown voice 'tuba'" in proc.stderr and "tone-bright" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_finetune_on_the_target_split_adds_the_new_voice(trained: Path, tmp_path: Path,
                                                         capsys) -> None:
    """``suite finetune music-audio --from RUN``: the held-out voice gets a slot and the
    report compares it before (rendered with a known voice) and after."""
    import json

    from torchsuite.core.lifecycle.transfer import run_finetune
    from torchsuite.plugins.music.audio.inference import load_run

    out = run_finetune("music-audio", str(trained), run_dir=str(tmp_path / "ft"),
                       overrides=["train.max_steps=4", "train.eval_every=0"])
    lm = load_run(out)
    assert lm.model.voice.voices() == ["tone-bright", "tone-hollow", "tone-soft"]
    report = json.loads((out / "transfer.json").read_text())
    before, after = report["before"]["target (held-out)"], report["after"]["target (held-out)"]
    assert before["model.unknown_voice_frac"] == 1.0
    assert after["model.unknown_voice_frac"] == 0.0
    assert "model.mrstft" in capsys.readouterr().out


def test_a_new_voice_from_a_folder_of_recordings(trained: Path, tmp_path: Path, tiny_cfg,
                                                 recordings: Path) -> None:
    """The README's workflow: prepare a folder of WAVs (no MIDI), fine-tune on it."""
    from torchsuite.core.lifecycle.transfer import run_finetune
    from torchsuite.plugins.music.audio.inference import load_run, transfer_audio

    data = tmp_path / "singer-data"
    MusicAudioTask(tiny_cfg(tmp_path, data__dir=str(data))).prepare(recordings)
    out = run_finetune("music-audio", str(trained), run_dir=str(tmp_path / "ft"),
                       overrides=[f"data.dir={json.dumps(str(data))}", "train.max_steps=3",
                                  "train.eval_every=0"])
    lm = load_run(out)
    assert "singer" in lm.model.voice.voices()
    assert lm.model.voice.voices()[:2] == ["tone-bright", "tone-hollow"]  # old voices kept
    wave = load_audio(recordings / "take0.wav", 16000)
    assert transfer_audio(lm, wave, "singer").shape[0] > 0


def test_freeze_finetune_learns_only_the_new_voice_embedding(trained: Path, tmp_path: Path) -> None:
    """``finetune.mode=freeze finetune.trainable=["voice"]``: a few minutes of a new voice
    move its embedding and nothing else."""
    from torchsuite.core.lifecycle.transfer import run_finetune
    from torchsuite.plugins.music.audio.inference import load_run

    before = load_run(trained).model.state_dict()
    out = run_finetune("music-audio", str(trained), run_dir=str(tmp_path / "ft"),
                       overrides=["train.max_steps=3", "train.eval_every=0",
                                  "finetune.mode=freeze", 'finetune.trainable=["voice"]',
                                  "finetune.lr_scale=10"])
    after = load_run(out).model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"voice.embedding.weight", "voice.names"}
    new_slot = after["voice.embedding.weight"][2]
    assert not torch.equal(before["voice.embedding.weight"][2], new_slot)
