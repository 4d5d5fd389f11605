"""The sound-source model and its voice table."""

from __future__ import annotations

import io

import pytest
import torch
from torchsuite.core.errors import SuiteError
from torchsuite.plugins.music.audio.features import COND_DIM
from torchsuite.plugins.music.audio.model import ModelSpec, SoundSourceModel, hold_f0

SPEC = ModelSpec(conv_channels=8, lstm_hidden=8, fc_hidden=8, voice_dim=4, voice_slots=3,
                 harmonics=6, noise_bands=4)


def test_forward_shapes_and_voice_changes_the_sound() -> None:
    torch.manual_seed(0)
    model = SoundSourceModel(SPEC)
    ids = model.voice.ids(["a", "b"], add=True)
    t = 20
    cond = torch.zeros(2, t, COND_DIM)
    cond[..., 1] = 1.0
    f0 = torch.full((2, t), 220.0)
    ctrl = model.controls(cond, ids)
    assert ctrl["amplitude"].shape == (2, t)
    assert ctrl["harmonic_dist"].shape == (2, t, SPEC.harmonics)
    assert ctrl["noise"].shape == (2, t, SPEC.noise_bands)
    gen = torch.Generator().manual_seed(0)
    y = model(cond, f0, ids, generator=gen)
    assert y.shape == (2, t * SPEC.hop)
    # Same conditioning, different voice embedding -> different audio.
    assert not torch.allclose(y[0], y[1])


def test_voice_names_survive_a_weights_only_round_trip() -> None:
    model = SoundSourceModel(SPEC)
    model.voice.add("violin")
    model.voice.add("flute")
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = SoundSourceModel(SPEC)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.voice.voices() == ["violin", "flute"]
    assert fresh.voice.ids(["flute"]).tolist() == [1]


def test_unknown_voice_lists_the_known_ones_and_a_full_table_is_refused() -> None:
    model = SoundSourceModel(SPEC)
    model.voice.ids(["violin", "flute", "oboe"], add=True)
    with pytest.raises(SuiteError, match="violin, flute, oboe"):
        model.voice.ids(["tuba"])
    with pytest.raises(SuiteError, match="voice table is full"):
        model.voice.add("tuba")


def test_hold_f0_forward_fills_unvoiced_frames() -> None:
    f0 = torch.tensor([[0.0, 220.0, 0.0, 0.0, 330.0, 0.0]])
    assert hold_f0(f0).tolist() == [[0.0, 220.0, 220.0, 220.0, 330.0, 330.0]]


def test_output_is_silent_through_a_long_rest_but_keeps_a_release() -> None:
    torch.manual_seed(0)
    model = SoundSourceModel(SPEC)
    ids = model.voice.ids(["a"], add=True)
    t = 200
    cond = torch.zeros(1, t, COND_DIM)
    cond[0, :40, 1] = 1.0  # one note, then 160 frames (1.3 s) of rest
    cond[0, :40, 0] = 0.2
    f0 = torch.zeros(1, t)
    f0[0, :40] = 330.0
    with torch.no_grad():
        y = model(cond, f0, ids, generator=torch.Generator().manual_seed(0))[0]
    hop = SPEC.hop
    note = y[: 40 * hop].pow(2).mean()
    release = y[40 * hop : 44 * hop].pow(2).mean()
    rest = y[160 * hop :].pow(2).mean()  # 1 s after the note: the gate is at e^-10
    assert float(rest) < 1e-6 * float(note)
    assert float(release) > 1e-3 * float(note)  # not cut off abruptly at the note end


def test_eval_output_is_deterministic_for_export_and_training_noise_is_fresh() -> None:
    model = SoundSourceModel(SPEC)
    ids = model.voice.ids(["a"], add=True)
    cond = torch.zeros(1, 30, COND_DIM)
    cond[..., 1] = 1.0
    f0 = torch.full((1, 30), 200.0)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(cond, f0, ids), model(cond, f0, ids))
        model.train()
        assert not torch.equal(model(cond, f0, ids), model(cond, f0, ids))
