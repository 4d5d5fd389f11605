"""Reading and writing audio files with soundfile, resampling with torchaudio.

torchaudio's own ``load``/``save`` need torchcodec, which this project does not
depend on; soundfile (libsndfile) reads WAV, FLAC and OGG directly. Every user
mistake (a missing, non-audio, corrupt or silent file) becomes a
:class:`~torchsuite.core.errors.DataError` that names the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torchsuite.core.errors import DataError

__all__ = ["AUDIO_SUFFIXES", "is_silent", "load_audio", "resample", "save_wav"]

log = logging.getLogger(__name__)

#: File suffixes treated as audio when scanning a directory of recordings.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
#: Peak level below which a recording counts as silent (about -60 dBFS).
SILENCE_PEAK = 1e-3


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int, *, what: str = "audio") -> torch.Tensor:
    """Resample ``wave`` ([..., N]) from ``orig_sr`` to ``new_sr``, logging the conversion."""
    if orig_sr == new_sr:
        return wave
    log.warning("resampling %s from %d Hz to %d Hz", what, orig_sr, new_sr)
    return AF.resample(wave, orig_sr, new_sr)


def load_audio(path: str | Path, sample_rate: int, *, allow_silent: bool = False) -> torch.Tensor:
    """Read a mono float32 waveform at ``sample_rate`` from a WAV/FLAC/OGG file.

    Multi-channel files are averaged to mono; a different sample rate is
    resampled (and logged).

    Args:
        path: Audio file.
        sample_rate: Rate the caller works at; the file is resampled to it.
        allow_silent: Return silent audio instead of refusing it.

    Returns:
        Tensor [N] in [-1, 1].

    Raises:
        DataError: The file is missing, not audio, corrupt, empty or silent.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file '{path}' does not exist. Check the path.")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise DataError(
            f"'{path}' could not be read as audio ({e}). Expected a WAV, FLAC or OGG file; "
            "convert it (e.g. `ffmpeg -i in.mp3 out.wav`) or remove it from the input."
        ) from e
    if data.shape[0] == 0:
        raise DataError(f"audio file '{path}' holds no samples. Remove it or re-record it.")
    if not np.isfinite(data).all():
        raise DataError(f"audio file '{path}' contains NaN/Inf samples (corrupt). Re-export it.")
    wave = torch.from_numpy(data.mean(axis=1).copy())
    wave = resample(wave, int(sr), sample_rate, what=f"'{path}'")
    if not allow_silent and is_silent(wave):
        raise DataError(
            f"audio file '{path}' is silent (peak below {SILENCE_PEAK:g}, about -60 dBFS); "
            "there is no pitch or timbre to learn from. Check the recording level or remove it."
        )
    return wave


def is_silent(wave: torch.Tensor) -> bool:
    """Whether the waveform's peak is below :data:`SILENCE_PEAK`."""
    return wave.numel() == 0 or float(wave.abs().max()) < SILENCE_PEAK


def save_wav(path: str | Path, wave: torch.Tensor, sample_rate: int) -> Path:
    """Write a mono waveform as 16-bit PCM WAV (peak-limited to avoid clipping wrap-around)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = wave.detach().float().cpu().reshape(-1).numpy()
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0.99:
        x = x * (0.99 / peak)
    sf.write(str(path), x, sample_rate, subtype="PCM_16")
    return path
