"""Frame-level audio features: log-mel spectrograms, A-weighted loudness, f0, conditioning.

All features share one frame grid: frame ``t`` covers samples
``[t * hop, (t + 1) * hop)`` of a waveform whose length is a multiple of ``hop``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "COND_DIM",
    "FeatureSpec",
    "a_weighting_db",
    "build_conditioning",
    "cents_between",
    "detect_f0",
    "f0_and_voicing",
    "frames_to_samples",
    "hz_to_midi",
    "log_mel",
    "loudness_db",
    "median_f0",
    "midi_to_hz",
    "onsets_from_f0",
    "voicing_from_loudness",
]

#: Conditioning channels per frame: pitch, voiced, onset, loudness, loudness-present flag.
COND_DIM = 5
#: Floor of the loudness scale (dB); quieter frames are clamped to it.
LOUD_FLOOR_DB = -80.0


@dataclass(frozen=True)
class FeatureSpec:
    """Sample rate and frame grid shared by data preparation, model and evaluation."""

    sample_rate: int = 16000
    hop: int = 128
    n_fft: int = 1024
    n_mels: int = 80

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop


def hz_to_midi(f: torch.Tensor) -> torch.Tensor:
    """Frequency (Hz, > 0) to fractional MIDI pitch."""
    return 69.0 + 12.0 * torch.log2(f.clamp_min(1e-3) / 440.0)


def midi_to_hz(m: torch.Tensor) -> torch.Tensor:
    """Fractional MIDI pitch to frequency (Hz)."""
    return 440.0 * torch.pow(2.0, (m - 69.0) / 12.0)


# torchaudio is imported inside the functions: `suite tasks` imports this module and should
# not pay for torchaudio's start-up.
_MEL_CACHE: dict[tuple[int, int, int, int], torch.nn.Module] = {}


def log_mel(wave: torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
    """Log-mel spectrogram (natural log of power + 1e-5): [..., N] -> [..., n_mels, N // hop]."""
    import torchaudio

    key = (spec.sample_rate, spec.n_fft, spec.hop, spec.n_mels)
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop,
            n_mels=spec.n_mels, power=2.0,
        )
    mel = _MEL_CACHE[key].to(wave.device)(wave)
    frames = wave.shape[-1] // spec.hop
    return torch.log(mel[..., :frames] + 1e-5)


def a_weighting_db(freqs: torch.Tensor) -> torch.Tensor:
    """IEC 61672 A-weighting in dB at ``freqs`` (Hz): loudness as the ear weighs it."""
    f2 = freqs.double().clamp_min(1e-3) ** 2
    num = (12194.0**2) * f2**2
    den = (
        (f2 + 20.6**2)
        * torch.sqrt((f2 + 107.7**2) * (f2 + 737.9**2))
        * (f2 + 12194.0**2)
    )
    return (20.0 * torch.log10(num / den) + 2.0).float()


def loudness_db(wave: torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
    """A-weighted frame loudness in dB (floored at -80): [..., N] -> [..., N // hop]."""
    n_fft = 4 * spec.hop
    window = torch.hann_window(n_fft, device=wave.device)
    stft = torch.stft(wave, n_fft, spec.hop, window=window, center=True, return_complex=True)
    power = stft.abs() ** 2  # [..., F, frames + 1]
    freqs = torch.linspace(0, spec.sample_rate / 2, n_fft // 2 + 1, device=wave.device)
    weight = torch.pow(10.0, a_weighting_db(freqs) / 10.0).to(wave.device)
    # Mean weighted power normalised so a full-scale sine at 1 kHz reads about 0 dB.
    mean_power = (power * weight[:, None]).sum(-2) / (window.sum() ** 2 / 2)
    db = 10.0 * torch.log10(mean_power.clamp_min(1e-10))
    frames = wave.shape[-1] // spec.hop
    return db[..., :frames].clamp_min(LOUD_FLOOR_DB)


def voicing_from_loudness(loud: torch.Tensor, *, rel_db: float = 35.0,
                          abs_db: float = -60.0) -> torch.Tensor:
    """Frames loud enough to carry a pitch: above ``abs_db`` and within ``rel_db`` of the peak.

    torchaudio's pitch detector has no voicing decision, so voicing is judged by level.
    """
    peak = loud.amax(dim=-1, keepdim=True)
    return (loud > abs_db) & (loud > peak - rel_db)


def detect_f0(wave: torch.Tensor, spec: FeatureSpec, *, freq_low: float = 50.0,
              freq_high: float = 1600.0, method: str = "yin") -> torch.Tensor:
    """f0 per frame (Hz): [N] -> [N // hop].

    Args:
        wave: Mono audio.
        spec: Frame grid.
        freq_low: Lowest f0 searched.
        freq_high: Highest f0 searched.
        method: ``yin`` (:func:`.pitch.yin`, the default: few octave errors) or
            ``torchaudio`` (``torchaudio.functional.detect_pitch_frequency`` on 10 ms
            frames, linearly interpolated onto this grid; kept for comparison).
    """
    frames = wave.shape[-1] // spec.hop
    if frames == 0:
        return torch.zeros(0)
    if method == "yin":
        from .pitch import yin

        return yin(wave, spec.sample_rate, spec.hop, fmin=freq_low, fmax=freq_high)[0]
    if method != "torchaudio":
        raise ValueError(f"unknown f0 method {method!r}; use 'yin' or 'torchaudio'")
    import torchaudio.functional as AF

    pitch = AF.detect_pitch_frequency(
        wave.reshape(1, -1), spec.sample_rate, frame_time=0.01, win_length=5,
        freq_low=int(freq_low), freq_high=int(freq_high),
    )[0]
    if pitch.numel() == 1:
        return pitch.expand(frames).clone()
    out = F.interpolate(pitch.view(1, 1, -1), size=frames, mode="linear", align_corners=True)
    return out.view(-1)


def f0_and_voicing(wave: torch.Tensor, spec: FeatureSpec, loud: torch.Tensor | None = None,
                   *, min_periodicity: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """f0 (Hz) and voiced flags of a recording, each [N // hop].

    A frame is voiced when it is loud enough (:func:`voicing_from_loudness`) *and*
    periodic (YIN periodicity above ``min_periodicity``): level alone calls breath,
    clicks and the half-empty first window pitched.
    """
    from .pitch import yin

    n = wave.shape[-1] // spec.hop * spec.hop
    if loud is None:
        loud = loudness_db(wave[..., :n], spec)
    f0, periodicity = yin(wave[..., :n], spec.sample_rate, spec.hop)
    voiced = voicing_from_loudness(loud) & (periodicity > min_periodicity)
    return median_f0(f0, voiced), voiced


def median_f0(f0: torch.Tensor, voiced: torch.Tensor, width: int = 5) -> torch.Tensor:
    """Median-filter a pitch track over voiced frames only: [T] -> [T].

    Removes the one-frame octave slips where an analysis window straddles two notes;
    unvoiced frames are ignored (NaN) so a note's first frames keep their own pitch.
    """
    if f0.numel() == 0:
        return f0
    x = torch.where(voiced.bool(), f0, torch.full_like(f0, float("nan")))
    pad = width // 2
    xp = F.pad(x.view(1, 1, -1), (pad, pad), value=float("nan")).view(-1)
    med = xp.unfold(0, width, 1).nanmedian(dim=-1).values
    return torch.where(voiced.bool() & ~med.isnan(), med, f0)


def onsets_from_f0(f0: torch.Tensor, voiced: torch.Tensor, *, jump_cents: float = 70.0,
                   width: int = 3) -> torch.Tensor:
    """Note-onset flags from a pitch track: voicing starts or pitch jumps > ``jump_cents``."""
    v = voiced.bool()
    start = v & ~torch.cat([torch.zeros(1, dtype=torch.bool), v[:-1]])
    cents = 1200.0 * torch.log2(f0.clamp_min(1.0))
    jump = torch.zeros_like(v)
    jump[1:] = (cents[1:] - cents[:-1]).abs() > jump_cents
    on = (start | (jump & v)).float()
    # Widen each onset to ``width`` frames so a one-frame offset is forgiven.
    return F.max_pool1d(on.view(1, 1, -1), width, stride=1, padding=width // 2).view(-1)[
        : on.numel()
    ]


def build_conditioning(
    f0: torch.Tensor,
    voiced: torch.Tensor,
    onset: torch.Tensor,
    loud: torch.Tensor | None,
) -> torch.Tensor:
    """Stack per-frame conditioning: [T] each -> [T, COND_DIM].

    Channels: pitch ((MIDI - 60) / 24, 0 when unvoiced), voiced, onset,
    loudness ((dB + 80) / 80) and a flag saying whether loudness is given. Synthesis
    from MIDI has no loudness (flag 0); transfer from a recording has it (flag 1).
    """
    v = voiced.float()
    pitch = (hz_to_midi(f0.clamp_min(1.0)) - 60.0) / 24.0 * v
    if loud is None:
        ln = torch.zeros_like(v)
        present = torch.zeros_like(v)
    else:
        ln = ((loud - LOUD_FLOOR_DB) / -LOUD_FLOOR_DB).clamp(0.0, 1.5)
        present = torch.ones_like(v)
    return torch.stack([pitch, v, onset.float(), ln, present], dim=-1)


def frames_to_samples(n_frames: int, spec: FeatureSpec) -> int:
    """Number of samples covered by ``n_frames`` frames."""
    return n_frames * spec.hop


def cents_between(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Absolute pitch difference in cents between two positive frequency tracks."""
    a_t, b_t = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    return (1200.0 * torch.log2(a_t.clamp_min(1e-3) / b_t.clamp_min(1e-3))).abs()


