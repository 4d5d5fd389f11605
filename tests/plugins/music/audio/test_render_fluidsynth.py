"""Rendering with FluidSynth and a General MIDI soundfont (skipped when they are absent)."""

from __future__ import annotations

import pytest
import torch
from torchsuite.plugins.music.audio.features import FeatureSpec, cents_between, f0_and_voicing
from torchsuite.plugins.music.audio.notes import Line, NoteEvent, line_features
from torchsuite.plugins.music.audio.render import render_line


@pytest.mark.parametrize("voice", ["violin", "flute"])
@pytest.mark.usefixtures("fluidsynth")
def test_fluidsynth_renders_the_notes_pitch(voice: str) -> None:
    spec = FeatureSpec()
    line = Line("t", [NoteEvent(67, 0.0, 0.6), NoteEvent(72, 0.6, 1.2)])
    wave = render_line(line, voice, spec)
    assert wave.abs().max() > 0.01
    n = wave.shape[0] // spec.hop
    notes = line_features(line, n, spec)
    f0, voiced = f0_and_voicing(wave, spec)
    both = voiced & notes["voiced"].bool()
    assert int(both.sum()) > 40
    cents = cents_between(f0[both], notes["f0"][both])
    assert float(cents.median()) < 30.0


@pytest.mark.usefixtures("fluidsynth")
def test_two_voices_sound_different() -> None:
    spec = FeatureSpec()
    line = Line("t", [NoteEvent(67, 0.0, 0.8)])
    a, b = render_line(line, "violin", spec), render_line(line, "flute", spec)
    n = min(a.shape[0], b.shape[0])
    spec_a = torch.fft.rfft(a[:n]).abs()
    spec_b = torch.fft.rfft(b[:n]).abs()
    sim = torch.nn.functional.cosine_similarity(spec_a, spec_b, dim=0)
    assert float(sim) < 0.95
