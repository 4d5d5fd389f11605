"""Loading a trained run and rendering with it: MIDI -> audio, audio -> audio in another voice."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from torchsuite.core.cli_args import task_from_run
from torchsuite.core.errors import SuiteError
from torchsuite.core.train.checkpoint import best_checkpoint, load_checkpoint, load_model_state

from .audio_io import load_audio
from .features import FeatureSpec, build_conditioning
from .model import SoundSourceModel
from .notes import Line, line_features, lines_from_midi, load_midi, sine_render
from .quality import audio_conditioning
from .task import MusicAudioTask, unwrap

__all__ = ["LoadedModel", "load_run", "synthesize_line", "transfer_audio"]


@dataclass
class LoadedModel:
    """A trained model with its task and run directory."""

    task: MusicAudioTask
    model: SoundSourceModel
    run_dir: Path

    @property
    def spec(self) -> FeatureSpec:
        return self.task.feature_spec

    def voice_id(self, voice: str) -> torch.Tensor:
        """[1] id of ``voice``; an unknown name is refused with the list of known ones."""
        return self.model.voice.ids([voice])


def load_run(ref: str | Path) -> LoadedModel:
    """The best checkpoint of a ``music-audio`` or ``music-audio-gan`` run (a directory or
    a name under ``runs/``)."""
    from torchsuite.core.runs import find_run

    args = argparse.Namespace(config=[], overrides=[], set_=[])
    try:
        found = find_run(ref, "music-audio")
    except SuiteError:
        found = find_run(ref, "music-audio-gan")  # its error names the places it looked
    task, run = task_from_run(found, args)
    if not isinstance(task, MusicAudioTask):
        raise SuiteError(f"run '{run}' is not a music-audio run.")
    path = best_checkpoint(run)
    ckpt = load_checkpoint(path)
    model = task.build_model()  # music-audio-gan: generator + discriminator
    load_model_state(model, ckpt, task=task.name, path=path)
    model.eval()
    return LoadedModel(task, unwrap(model), run)


@torch.no_grad()
def synthesize_line(lm: LoadedModel, line: Line, voice: str, *, tail_s: float = 0.5,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Render a note line in ``voice``; returns (model audio [N], sine rendering [N])."""
    spec = lm.spec
    ids = lm.voice_id(voice)
    n_frames = max(1, int((line.duration + tail_s) * spec.frame_rate))
    nf = line_features(line, n_frames, spec)
    cond = build_conditioning(nf["f0"], nf["voiced"], nf["onset"], None)
    gen = torch.Generator().manual_seed(seed)
    y = lm.model(cond[None], nf["f0"][None], ids, generator=gen)[0]
    return y, sine_render(nf["f0"], nf["voiced"], spec)


@torch.no_grad()
def transfer_audio(lm: LoadedModel, wave: torch.Tensor, voice: str, *, transpose: float = 0.0,
                   seed: int = 0) -> torch.Tensor:
    """Re-render a recording's pitch and loudness contour in ``voice`` ([N] -> [N'])."""
    ids = lm.voice_id(voice)
    cond, f0 = audio_conditioning(wave, lm.spec)
    if transpose:
        f0 = f0 * 2.0 ** (transpose / 12.0)
        cond[:, 0] = cond[:, 0] + transpose / 24.0 * cond[:, 1]
    gen = torch.Generator().manual_seed(seed)
    return lm.model(cond[None], f0[None], ids, generator=gen)[0]


def midi_line(path: Path, part: int | None) -> Line:
    """The line to synthesize from a MIDI file: one part, or the top line of all parts."""
    pm = load_midi(path)
    lines = lines_from_midi(pm, path.stem, part=part, merge=part is None)
    if not lines or not lines[0].notes:
        raise SuiteError(f"MIDI file '{path}' has no notes outside drum tracks; nothing to render.")
    return lines[0]


def read_recording(path: Path, spec: FeatureSpec) -> torch.Tensor:
    """A recording at the model's rate (resampled and logged when it differs)."""
    return load_audio(path, spec.sample_rate)
