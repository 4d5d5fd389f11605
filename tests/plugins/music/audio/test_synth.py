"""The differentiable harmonic-plus-noise synthesizer."""

from __future__ import annotations

import torch
from torchsuite.plugins.music.audio.synth import filtered_noise, harmonic_synth

SR, HOP = 16000, 128


def _peak_hz(x: torch.Tensor) -> float:
    mag = torch.fft.rfft(x * torch.hann_window(x.shape[-1])).abs()
    return float(mag.argmax()) * SR / x.shape[-1]


def test_single_harmonic_is_a_sine_at_f0() -> None:
    t = 100
    f0 = torch.full((1, t), 440.0)
    amp = torch.full((1, t), 0.5)
    dist = torch.zeros(1, t, 4)
    dist[..., 0] = 1.0
    y = harmonic_synth(f0, amp, dist, SR, HOP)[0]
    assert y.shape == (t * HOP,)
    assert abs(_peak_hz(y) - 440.0) < 2.0
    assert abs(float(y.abs().max()) - 0.5) < 0.01


def test_harmonics_above_nyquist_are_dropped() -> None:
    t = 50
    f0 = torch.full((1, t), 3000.0)
    dist = torch.zeros(1, t, 4)
    dist[..., 2] = 1.0  # only harmonic 3 = 9 kHz, above 8 kHz Nyquist
    dist[..., 0] = 1e-3
    y = harmonic_synth(f0, torch.ones(1, t), dist, SR, HOP)[0]
    # After dropping harmonic 3 and renormalising, only the fundamental is left.
    assert abs(_peak_hz(y) - 3000.0) < 5.0


def test_noise_follows_its_filter_and_gradients_reach_the_controls() -> None:
    t = 40
    gen = torch.Generator().manual_seed(0)
    silent = filtered_noise(torch.zeros(1, t, 8), HOP, gen)
    assert float(silent.abs().max()) < 1e-6
    mags = torch.zeros(1, t, 8)
    mags[..., -2:] = 1.0  # only the top bands: a high-passed noise
    y = filtered_noise(mags, HOP, gen)[0]
    spec = torch.fft.rfft(y).abs()
    half = spec.shape[0] // 2
    assert float(spec[half:].sum()) > 5 * float(spec[:half].sum())

    amp = torch.full((1, t), 0.3, requires_grad=True)
    dist = torch.ones(1, t, 3, requires_grad=True)
    noise = torch.full((1, t, 8), 0.1, requires_grad=True)
    out = harmonic_synth(torch.full((1, t), 220.0), amp, dist, SR, HOP) + filtered_noise(
        noise, HOP, gen)
    out.pow(2).sum().backward()
    for p in (amp, dist, noise):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0
