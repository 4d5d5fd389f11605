"""Rendering note lines to audio: FluidSynth + a General MIDI soundfont, or labelled tone voices.

``fluidsynth`` voices are real sampled instruments of the soundfont (each GM
program a "voice"). ``additive`` voices are NOT instruments: they are plain
additive-synthesis tones with fixed harmonic recipes, offered so that tests and
machines without FluidSynth still have paired (notes, audio) data. Their names
start with ``tone-`` so they are never mistaken for the real thing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torchsuite.core.errors import DataError

from .audio_io import resample
from .features import FeatureSpec
from .notes import Line, line_features

__all__ = [
    "ADDITIVE_VOICES",
    "GM_VOICES",
    "INSTALL_HINT",
    "available_voices",
    "check_voices",
    "find_soundfont",
    "render_line",
]

INSTALL_HINT = (
    "Install them with `bash scripts/install-system-deps.sh` (runs `apt-get install -y "
    "--no-install-recommends fluidsynth timgm6mb-soundfont`), point data.soundfont at a "
    "General MIDI .sf2 file, or use the synthetic test voices with data.renderer=additive."
)

#: Voice name -> General MIDI program (0-based) for the FluidSynth renderer.
GM_VOICES: dict[str, int] = {
    "violin": 40,
    "cello": 42,
    "flute": 73,
    "clarinet": 71,
    "oboe": 68,
    "trumpet": 56,
    "choir": 52,  # "Choir Aahs": a sung vowel, the closest GM has to a singing voice
    "sax": 65,
}

#: Voice name -> (harmonic amplitude exponent, odd harmonics only, noise level) for the
#: labelled additive tone renderer: amplitude of harmonic k is k ** -exponent.
ADDITIVE_VOICES: dict[str, tuple[float, bool, float]] = {
    "tone-bright": (1.0, False, 0.0),
    "tone-hollow": (1.0, True, 0.0),
    "tone-soft": (2.5, False, 0.01),
}

_SOUNDFONT_PLACES = (
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)


def available_voices(renderer: str) -> list[str]:
    """Voice names the renderer offers."""
    return sorted(GM_VOICES if renderer == "fluidsynth" else ADDITIVE_VOICES)


def check_voices(voices: list[str], renderer: str) -> None:
    """Refuse unknown voice names, listing the available ones."""
    table = available_voices(renderer)
    unknown = [v for v in voices if v not in table]
    if unknown:
        raise DataError(
            f"unknown voice(s) {unknown} for data.renderer={renderer}; available: "
            f"{', '.join(table)}. Fix data.voices (or data.target_voice)."
        )


def find_soundfont(configured: str = "") -> Path:
    """The soundfont to use: ``configured``, ``$SUITE_SOUNDFONT`` or a Debian default."""
    if configured:
        p = Path(configured)
        if not p.is_file():
            raise DataError(f"soundfont '{p}' (data.soundfont) does not exist. {INSTALL_HINT}")
        return p
    env = os.environ.get("SUITE_SOUNDFONT", "")
    for cand in ([env] if env else []) + list(_SOUNDFONT_PLACES):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise DataError(
        f"no General MIDI soundfont found (looked in {', '.join(_SOUNDFONT_PLACES)}). "
        f"{INSTALL_HINT}"
    )


def _fluidsynth_binary() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise DataError(f"the `fluidsynth` program is not installed. {INSTALL_HINT}")
    return exe


def _render_fluidsynth(line: Line, voice: str, spec: FeatureSpec, soundfont: Path) -> torch.Tensor:
    exe = _fluidsynth_binary()
    pm = line.to_midi(GM_VOICES[voice])
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        pm.write(str(mid))
        # -ni: no shell, no MIDI input; reverb and chorus off so the audio is the dry voice.
        cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", "1.0",
               "-r", str(spec.sample_rate), "-F", str(wav), str(soundfont), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not wav.is_file():
            raise DataError(
                f"fluidsynth failed on '{line.name}' (voice {voice}, exit {proc.returncode}): "
                f"{proc.stderr.strip()[-400:]}. Check the soundfont '{soundfont}'. {INSTALL_HINT}"
            )
        data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    wave = torch.from_numpy(data.mean(axis=1).copy())
    return resample(wave, int(sr), spec.sample_rate, what=f"fluidsynth output for {line.name}")


def _render_additive(line: Line, voice: str, spec: FeatureSpec, seed: int) -> torch.Tensor:
    exponent, odd_only, noise = ADDITIVE_VOICES[voice]
    n_frames = int(np.ceil((line.duration + 0.3) * spec.frame_rate))
    feats = line_features(line, n_frames, spec)
    n = n_frames * spec.hop
    # Frame envelope with a one-pole release (about 40 ms) so notes do not end in a click.
    target = (feats["voiced"] * (0.4 + 0.6 * feats["velocity"])).numpy()
    env = np.zeros(n_frames)
    decay = np.exp(-1.0 / (0.04 * spec.frame_rate))
    for t in range(n_frames):
        prev = env[t - 1] if t else 0.0
        env[t] = target[t] if target[t] >= prev else max(target[t], prev * decay)
    env_s = torch.nn.functional.interpolate(
        torch.from_numpy(env).view(1, 1, -1), size=n, mode="linear", align_corners=False
    ).view(-1)
    f0 = torch.repeat_interleave(feats["f0"].double(), spec.hop)
    phase = 2 * np.pi * torch.cumsum(f0 / spec.sample_rate, 0)
    wave = torch.zeros(n, dtype=torch.float64)
    for k in range(1, 41):
        if odd_only and k % 2 == 0:
            continue
        below_nyquist = (k * f0) < spec.sample_rate / 2
        wave += below_nyquist * torch.sin(k * phase) * k ** (-exponent)
    wave = wave / wave.abs().max().clamp_min(1e-6)
    gen = torch.Generator().manual_seed(seed)
    wave = wave + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    return (0.5 * env_s * wave).float()


def render_line(line: Line, voice: str, spec: FeatureSpec, *, renderer: str = "fluidsynth",
                soundfont: Path | None = None, seed: int = 0) -> torch.Tensor:
    """Audio [N] of ``line`` played by ``voice`` at ``spec.sample_rate``.

    Args:
        line: Monophonic notes.
        voice: A name from :func:`available_voices` of the renderer.
        spec: Sample rate.
        renderer: ``fluidsynth`` (real GM instruments) or ``additive`` (labelled test tones).
        soundfont: Soundfont for FluidSynth (default: :func:`find_soundfont`).
        seed: Noise seed of the additive renderer.
    """
    check_voices([voice], renderer)
    if renderer == "fluidsynth":
        return _render_fluidsynth(line, voice, spec, soundfont or find_soundfont())
    return _render_additive(line, voice, spec, seed)
