"""A differentiable harmonic-plus-noise synthesizer (DDSP, Engel et al. 2020).

The network never outputs samples. Per frame it predicts the loudness of a bank
of harmonic sinusoids locked to f0, how that loudness spreads over the
harmonics, and the magnitude response of a filter applied to white noise. The
synthesizer turns those frame controls into audio with ordinary tensor ops, so
a spectral loss on the audio trains the network end to end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["exp_sigmoid", "filtered_noise", "harmonic_synth", "upsample_frames"]


def exp_sigmoid(x: torch.Tensor, max_value: float = 2.0, threshold: float = 1e-7) -> torch.Tensor:
    """DDSP's positive, bounded, log-scaled activation for amplitudes."""
    return max_value * torch.sigmoid(x) ** math.log(10.0) + threshold


def upsample_frames(x: torch.Tensor, hop: int) -> torch.Tensor:
    """Linear interpolation of frame controls to audio rate: [B, T, C] -> [B, T * hop, C]."""
    t = x.shape[1]
    y = F.interpolate(x.transpose(1, 2), size=t * hop, mode="linear", align_corners=False)
    return y.transpose(1, 2)


def harmonic_synth(f0: torch.Tensor, amplitude: torch.Tensor, harmonic_dist: torch.Tensor,
                   sample_rate: int, hop: int) -> torch.Tensor:
    """Sum of harmonics of f0.

    Args:
        f0: [B, T] fundamental in Hz (0 where unvoiced).
        amplitude: [B, T] overall harmonic amplitude.
        harmonic_dist: [B, T, K] non-negative weights of harmonics 1..K.
        sample_rate: Audio rate.
        hop: Samples per frame.

    Returns:
        [B, T * hop] audio.
    """
    k = harmonic_dist.shape[-1]
    harmonics = torch.arange(1, k + 1, device=f0.device, dtype=f0.dtype)  # [K]
    # Zero the harmonics above Nyquist (they would alias), then renormalise.
    audible = (f0[..., None] * harmonics < sample_rate / 2).to(harmonic_dist.dtype)
    dist = harmonic_dist * audible
    dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-7)
    amps = amplitude[..., None] * dist  # [B, T, K]
    amps_s = upsample_frames(amps, hop)  # [B, N, K]
    f0_s = upsample_frames(f0[..., None], hop)[..., 0]  # [B, N]
    # Phase accumulates in float64: float32 loses ~1e-3 rad after a few seconds.
    cycles = torch.cumsum(f0_s.double() / sample_rate, dim=1)
    phase = (2 * math.pi * (cycles - torch.floor(cycles))).to(f0.dtype)  # [B, N]
    return (torch.sin(phase[..., None] * harmonics) * amps_s).sum(-1)


def filtered_noise(magnitudes: torch.Tensor, hop: int,
                   generator: torch.Generator | None = None,
                   table: torch.Tensor | None = None) -> torch.Tensor:
    """White noise shaped per frame by a magnitude response, applied in the STFT domain.

    Args:
        magnitudes: [B, T, M] filter gains on M bands spread linearly from 0 Hz to Nyquist.
        hop: Samples per frame.
        generator: Noise seed (for reproducible output).
        table: A fixed noise signal [L] used (tiled) instead of fresh random noise.

    Returns:
        [B, T * hop] audio.
    """
    b, t = magnitudes.shape[:2]
    n = t * hop
    n_fft = 2 * hop
    if table is not None:  # fixed white noise in [-1, 1], tiled: deterministic and exportable
        reps = -(-n // table.shape[0])
        noise = table.to(magnitudes).repeat(reps)[:n].expand(b, n)
    else:
        noise = torch.rand(b, n, generator=generator, device="cpu").to(magnitudes) * 2 - 1
    window = torch.hann_window(n_fft, device=magnitudes.device, dtype=magnitudes.dtype)
    spec = torch.stft(noise, n_fft, hop, window=window, center=True, return_complex=True)
    # spec: [B, n_fft/2+1, T+1]; gains interpolated to the FFT bins, repeated for the last frame.
    gains = F.interpolate(magnitudes, size=n_fft // 2 + 1, mode="linear", align_corners=True)
    gains = torch.cat([gains, gains[:, -1:]], dim=1).transpose(1, 2)  # [B, F, T+1]
    return torch.istft(spec * gains, n_fft, hop, window=window, center=True, length=n)
