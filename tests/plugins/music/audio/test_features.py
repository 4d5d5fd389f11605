"""Frame features: YIN f0, loudness, log-mel grid, conditioning."""

from __future__ import annotations

import math

import torch
from torchsuite.plugins.music.audio.features import (
    COND_DIM,
    FeatureSpec,
    build_conditioning,
    cents_between,
    detect_f0,
    log_mel,
    loudness_db,
    onsets_from_f0,
    voicing_from_loudness,
)

SPEC = FeatureSpec()


def _frame_truth(f_samples: torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
    """True f0 at frame centres."""
    return f_samples[spec.hop // 2 :: spec.hop][: f_samples.shape[0] // spec.hop]


def test_yin_tracks_a_harmonic_tone_within_a_few_cents(tone) -> None:
    wave, f = tone([110.0, 220.0, 247.0, 392.0, 523.25], 0.4)
    f0 = detect_f0(wave, SPEC)
    truth = _frame_truth(f, SPEC)
    assert f0.shape == truth.shape
    # Away from the note changes (where a window straddles two pitches) the error is tiny.
    steady = torch.ones_like(truth, dtype=torch.bool)
    per = int(0.4 * SPEC.frame_rate)
    for k in range(1, 5):
        steady[k * per - 5 : k * per + 5] = False
    cents = cents_between(f0[steady], truth[steady])
    assert float(cents.median()) < 5.0
    assert float((cents > 50).float().mean()) < 0.02  # almost no octave / gross errors


def test_yin_beats_torchaudio_detector_on_harmonic_tone(tone) -> None:
    wave, f = tone([220.0, 247.0, 262.0], 0.5)
    truth = _frame_truth(f, SPEC)
    yin_err = cents_between(detect_f0(wave, SPEC), truth).mean()
    ta_err = cents_between(detect_f0(wave, SPEC, method="torchaudio"), truth).mean()
    assert float(yin_err) < float(ta_err)


def test_loudness_rises_6db_per_doubling_and_frames_align() -> None:
    t = torch.arange(SPEC.sample_rate) / SPEC.sample_rate
    quiet = 0.1 * torch.sin(2 * math.pi * 1000 * t)
    loud_q, loud_l = loudness_db(quiet, SPEC), loudness_db(2 * quiet, SPEC)
    assert loud_q.shape == (SPEC.sample_rate // SPEC.hop,)
    diff = (loud_l - loud_q)[5:-5]
    assert torch.allclose(diff, torch.full_like(diff, 20 * math.log10(2)), atol=0.05)
    # A-weighting: a 100 Hz tone at the same level reads far quieter than 1 kHz.
    low = loudness_db(0.1 * torch.sin(2 * math.pi * 100 * t), SPEC)
    assert float((loud_q - low)[5:-5].mean()) > 15.0
    assert log_mel(quiet, SPEC).shape == (SPEC.n_mels, loud_q.shape[0])


def test_voicing_onsets_and_conditioning_layout() -> None:
    loud = torch.tensor([-90.0, -20.0, -18.0, -75.0, -19.0])
    voiced = voicing_from_loudness(loud)
    assert voiced.tolist() == [False, True, True, False, True]
    f0 = torch.tensor([0.0, 220.0, 440.0, 0.0, 440.0])
    on = onsets_from_f0(f0, voiced, width=1)
    assert on.tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]  # start, octave jump, restart
    cond = build_conditioning(f0, voiced, on, None)
    assert cond.shape == (5, COND_DIM)
    assert torch.isclose(cond[2, 0], torch.tensor((69.0 - 60.0) / 24.0))  # A4 = MIDI 69
    assert cond[0, 0] == 0.0 and cond[:, 4].sum() == 0  # unvoiced pitch 0; loudness absent
    assert build_conditioning(f0, voiced, on, loud)[:, 4].sum() == 5
