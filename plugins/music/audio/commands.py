"""``suite music synthesize`` and ``suite music transfer``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from torchsuite.core.errors import SuiteError

__all__ = ["configure_synthesize", "configure_transfer", "run_synthesize", "run_transfer"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--voice", required=True, help="voice to render in (the model's voices are "
                   "listed when the name is unknown)")
    p.add_argument("--from", dest="from_run", default="latest",
                   help="music-audio run directory or name (default: the newest run)")
    p.add_argument("--out", help="output WAV path (default: RUN/samples/<name>.wav); the PNG "
                   "goes next to it")
    p.add_argument("--seed", type=int, default=0, help="noise seed")


def configure_synthesize(p: argparse.ArgumentParser) -> None:
    p.add_argument("midi", help="input MIDI file")
    p.add_argument("--part", type=int, default=None,
                   help="render only this part (0-based); default: the top line of all parts")
    _common(p)


def configure_transfer(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", help="input recording (WAV/FLAC/OGG)")
    p.add_argument("--transpose", type=float, default=0.0,
                   help="shift the pitch by this many semitones (to fit the voice's range)")
    _common(p)


def _outputs(run_dir: Path, out: str | None, stem: str) -> tuple[Path, Path]:
    wav = Path(out) if out else run_dir / "samples" / f"{stem}.wav"
    if wav.suffix.lower() != ".wav":
        raise SuiteError(f"--out '{wav}' must end in .wav.")
    png = wav.with_suffix(".png")
    for p in (wav, png):
        if p.exists():
            raise SuiteError(f"'{p}' already exists; choose another --out (nothing was "
                             "overwritten).")
    return wav, png


def _log_to_stderr() -> None:
    # Resampling and skipped-file notices go through logging; show them on the terminal.
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")


def run_synthesize(args: argparse.Namespace) -> int:
    from .audio_io import save_wav
    from .inference import load_run, midi_line, synthesize_line
    from .plots import save_spectrogram_pair

    _log_to_stderr()
    midi = Path(args.midi)
    line = midi_line(midi, args.part)
    lm = load_run(args.from_run)
    wave, sine = synthesize_line(lm, line, args.voice, seed=args.seed)
    wav, png = _outputs(lm.run_dir, args.out, f"synth-{midi.stem}-{args.voice}")
    save_wav(wav, wave, lm.spec.sample_rate)
    save_spectrogram_pair(png, sine, wave, lm.spec,
                          (f"input notes ({midi.name}, sine rendering)",
                           f"output: voice '{args.voice}'"))
    print(f"rendered {wave.shape[-1] / lm.spec.sample_rate:.1f} s of '{midi.name}' in voice "
          f"'{args.voice}' with {lm.run_dir}")
    print(f"wrote {wav}")
    print(f"wrote {png}")
    return 0


def run_transfer(args: argparse.Namespace) -> int:
    from .audio_io import save_wav
    from .inference import load_run, read_recording, transfer_audio
    from .plots import save_spectrogram_pair

    _log_to_stderr()
    src = Path(args.audio)
    lm = load_run(args.from_run)
    lm.voice_id(args.voice)  # refuse an unknown voice before the slow part
    wave = read_recording(src, lm.spec)
    out = transfer_audio(lm, wave, args.voice, transpose=args.transpose, seed=args.seed)
    wav, png = _outputs(lm.run_dir, args.out, f"transfer-{src.stem}-{args.voice}")
    save_wav(wav, out, lm.spec.sample_rate)
    save_spectrogram_pair(png, wave, out, lm.spec,
                          (f"input: {src.name}", f"output: voice '{args.voice}'"))
    print(f"re-rendered {out.shape[-1] / lm.spec.sample_rate:.1f} s of '{src.name}' in voice "
          f"'{args.voice}' with {lm.run_dir}")
    print(f"wrote {wav}")
    print(f"wrote {png}")
    return 0
