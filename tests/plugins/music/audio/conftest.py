"""Fixtures for the music audio tests: tiny generated MIDI, tones and a prepared data set.

Everything here is generated (additive ``tone-*`` voices, sine recordings), so the
default tests need neither FluidSynth nor a soundfont.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pretty_midi
import pytest
import soundfile as sf
import torch
from torchsuite.core.config import resolve_config
from torchsuite.core.errors import DataError
from torchsuite.plugins.music.audio.render import find_soundfont
from torchsuite.plugins.music.audio.task import MusicAudioConfig, MusicAudioTask

SR = 16000

#: Overrides that make the task tiny: small model, 0.5 s segments, few steps.
TINY = {
    "data.renderer": "additive",
    "data.voices": ["tone-bright", "tone-hollow"],
    "data.target_voice": "tone-soft",
    "data.segment_seconds": 0.5,
    "data.max_seconds": 3.0,
    "model.conv_channels": 16,
    "model.lstm_hidden": 24,
    "model.fc_hidden": 24,
    "model.voice_dim": 8,
    "model.voice_slots": 4,
    "model.harmonics": 12,
    "model.noise_bands": 8,
    "loss.fft_sizes": [512, 128],
    "train.batch_size": 4,
    "train.max_steps": 6,
    "train.eval_every": 0,
    "train.eval_batches": 2,
    "train.log_every": 3,
    "train.progress": "off",
    "train.tensorboard": False,
    "eval.max_segments": 2,
    "eval.griffin_lim_iters": 4,
    "eval.classifier_segments": 16,
    "eval.classifier_steps": 20,
}


def _write_melody(path: Path, pitches: list[int], step: float = 0.25, program: int = 0,
                 parts: int = 1) -> Path:
    """A MIDI file with ``parts`` instruments playing ``pitches`` (part k an octave lower)."""
    pm = pretty_midi.PrettyMIDI()
    for k in range(parts):
        inst = pretty_midi.Instrument(program=program)
        for i, p in enumerate(pitches):
            inst.notes.append(pretty_midi.Note(90, p - 12 * k, i * step, (i + 0.9) * step))
        pm.instruments.append(inst)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))
    return path


def _tone(freqs: list[float], seconds_each: float, sr: int = SR, amp: float = 0.3
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Three-harmonic tone stepping through ``freqs``; returns (audio [N], true f0 [N])."""
    n_each = int(seconds_each * sr)
    f = torch.cat([torch.full((n_each,), float(x), dtype=torch.float64) for x in freqs])
    phase = 2 * math.pi * torch.cumsum(f / sr, 0)
    wave = amp * (torch.sin(phase) + 0.5 * torch.sin(2 * phase) + 0.3 * torch.sin(3 * phase))
    return (wave / 1.8).float(), f.float()


def _tiny_cfg(tmp: Path, **extra: object) -> MusicAudioConfig:
    """The tiny task config with data in ``tmp/data``; ``extra`` keys use ``__`` for dots."""
    over = {**TINY, "data.dir": str(tmp / "data"),
            **{k.replace("__", "."): v for k, v in extra.items()}}
    return resolve_config(MusicAudioConfig,
                          overrides=[f"{k}={json.dumps(v)}" for k, v in over.items()])


@pytest.fixture(scope="session")
def write_melody() -> Callable[..., Path]:
    """``write_melody(path, pitches, step=0.25, program=0, parts=1)`` -> a MIDI file."""
    return _write_melody


@pytest.fixture(scope="session")
def tone() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``tone(freqs, seconds_each, sr=16000, amp=0.3)`` -> (audio, true f0 per sample)."""
    return _tone


@pytest.fixture(scope="session")
def tiny_cfg() -> Callable[..., MusicAudioConfig]:
    """``tiny_cfg(tmp_dir, model__hop=64, ...)`` -> the tiny config, data in ``tmp_dir/data``."""
    return _tiny_cfg


@pytest.fixture(scope="session")
def midi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six two-part melodies of 2.5 s (enough pieces that train and dev both get some)."""
    d = tmp_path_factory.mktemp("midi")
    scales = [[60, 62, 64, 65, 67, 69, 71, 72, 74, 72], [67, 65, 64, 62, 60, 62, 64, 65, 67, 69]]
    for k in range(6):
        _write_melody(d / f"song{k}.mid", [p + k for p in scales[k % 2]], parts=2)
    return d


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, midi_dir: Path) -> MusicAudioTask:
    """A tiny task with its data prepared from ``midi_dir`` by the additive renderer."""
    root = tmp_path_factory.mktemp("prepared")
    task = MusicAudioTask(_tiny_cfg(root))
    task.prepare(midi_dir)
    return task


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    """A directory ``singer/`` of three 1.5 s tone recordings at 22.05 kHz (resampled on read)."""
    d = tmp_path / "singer"
    d.mkdir()
    for k, base in enumerate((196.0, 247.0, 330.0)):
        wave, _ = _tone([base, base * 1.25, base * 1.5], 0.5, sr=22050)
        sf.write(str(d / f"take{k}.wav"), wave.numpy(), 22050)
    return d



@pytest.fixture
def fluidsynth() -> None:
    """Skip, saying how to install them, unless FluidSynth and a GM soundfont are here."""
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed (run `bash scripts/install-system-deps.sh`)")
    try:
        find_soundfont()
    except DataError:
        pytest.skip("no General MIDI soundfont (run `bash scripts/install-system-deps.sh`)")
