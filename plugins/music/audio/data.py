"""Paired (notes, audio) data: rendering, feature extraction, segmenting and sharding.

Three kinds of source, all ending as fixed-length segments in core shards:

* nothing (default): the bundled Bach chorales, each part rendered by every voice;
* a directory (or file) of MIDI: rendered by every voice the same way;
* a directory of recordings (WAV/FLAC/OGG) of one voice, optionally each with an
  aligned ``<stem>.mid``; without MIDI, f0 comes from torchaudio's pitch detector.

A record is one segment: int16 audio plus frame features (f0, voiced, onset,
loudness), the voice name and the piece it came from. Splits are assigned by the
piece (never by position), so all voices of a piece share a split; the held-out
``target_voice`` and user recordings go to the ``target`` split for fine-tuning.
"""

from __future__ import annotations

import logging
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchsuite.core.data.shards import DatasetWriter, ShardedDataset, read_manifest
from torchsuite.core.data.split import SplitSpec, assign_split
from torchsuite.core.errors import DataError
from tqdm import tqdm

from .audio_io import AUDIO_SUFFIXES, is_silent, load_audio
from .features import (
    FeatureSpec,
    f0_and_voicing,
    loudness_db,
    onsets_from_f0,
)
from .notes import Line, chorale_lines, line_features, lines_from_midi, load_midi
from .render import check_voices, find_soundfont, render_line

__all__ = [
    "PrepareOptions",
    "SegmentDataset",
    "collate_segments",
    "prepare_audio",
    "segment_features",
]

log = logging.getLogger(__name__)
MIDI_SUFFIXES = (".mid", ".midi")


@dataclass
class PrepareOptions:
    """What :func:`prepare_audio` needs (filled from the task's ``[data]`` section)."""

    out_dir: Path
    spec: FeatureSpec
    renderer: str = "fluidsynth"
    soundfont: str = ""
    voices: tuple[str, ...] = ("violin", "flute", "clarinet", "choir")
    target_voice: str = "cello"
    recordings_voice: str = ""
    recordings_split: str = "target"
    max_pieces: int = 16
    parts: int = 2
    max_seconds: float = 16.0
    segment_seconds: float = 2.0
    min_voiced: float = 0.2
    salt: str = "music-audio-v1"
    overwrite: bool = False


class _Progress:
    """A tqdm bar on a terminal; plain ``what k/N`` lines (every ~10 s) in logs."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.done = total, what, 0
        self.t0 = self.last = time.perf_counter()
        self.bar = tqdm(total=total, desc=what, unit="take") if sys.stderr.isatty() else None

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        now = time.perf_counter()
        if now - self.last >= 10.0 or self.done == self.total:
            self.last = now
            print(f"{self.what} {self.done}/{self.total} ({now - self.t0:.0f} s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def segment_features(wave: torch.Tensor, spec: FeatureSpec, line: Line | None
                     ) -> dict[str, torch.Tensor]:
    """Frame features of a whole take: from its notes when known, else from the audio.

    Returns f0 (Hz), voiced, onset and loudness (dB), each [T] with T = len(wave) // hop.
    """
    n_frames = wave.shape[-1] // spec.hop
    loud = loudness_db(wave[: n_frames * spec.hop], spec)
    if line is not None:
        nf = line_features(line, n_frames, spec)
        return {"f0": nf["f0"], "voiced": nf["voiced"], "onset": nf["onset"], "loud": loud}
    f0, voiced_b = f0_and_voicing(wave, spec, loud)
    voiced = voiced_b.float()
    return {"f0": f0, "voiced": voiced, "onset": onsets_from_f0(f0, voiced), "loud": loud}


def _segments(wave: torch.Tensor, feats: dict[str, torch.Tensor], opts: PrepareOptions
              ) -> Iterator[dict[str, Any]]:
    seg = round(opts.segment_seconds * opts.spec.frame_rate)
    n_frames = min(wave.shape[-1] // opts.spec.hop, feats["f0"].shape[0])
    for start in range(0, n_frames - seg + 1, seg):
        sl = slice(start, start + seg)
        audio = wave[start * opts.spec.hop : (start + seg) * opts.spec.hop]
        voiced = feats["voiced"][sl]
        if float(voiced.mean()) < opts.min_voiced or is_silent(audio):
            continue
        pcm = (audio.clamp(-1, 1) * 32767).round().to(torch.int16).numpy()
        yield {
            "audio": pcm,
            "f0": feats["f0"][sl].float().numpy(),
            "voiced": voiced.to(torch.uint8).numpy(),
            "onset": feats["onset"][sl].to(torch.uint8).numpy(),
            "loud": feats["loud"][sl].float().numpy(),
            "start_frame": start,
        }


def _split_for(piece: str, opts: PrepareOptions) -> str:
    return assign_split(piece, SplitSpec(salt=opts.salt))


def _note_sources(source: Path | None, opts: PrepareOptions) -> Iterator[tuple[str, list[Line]]]:
    if source is None:
        yield from chorale_lines(opts.max_pieces, opts.parts)
        return
    files = [source] if source.is_file() else sorted(
        p for p in source.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES
    )
    for path in files[: opts.max_pieces or None]:
        lines = lines_from_midi(load_midi(path), path.stem)
        yield path.stem, lines[: opts.parts]


def _write_rendered(writer: DatasetWriter, source: Path | None, opts: PrepareOptions
                    ) -> dict[str, int]:
    voices = list(opts.voices) + ([opts.target_voice] if opts.target_voice else [])
    check_voices(voices, opts.renderer)
    soundfont = find_soundfont(opts.soundfont) if opts.renderer == "fluidsynth" else None
    counts: dict[str, int] = {}
    pieces = list(_note_sources(source, opts))
    if not pieces:
        raise DataError(
            f"no notes found in '{source}': expected MIDI files (.mid) with at least one "
            "non-drum part. Point --source at MIDI files or a directory of recordings."
        )
    bar = _Progress(len(pieces) * len(voices), f"rendering ({opts.renderer})")
    for piece, lines in pieces:
        for voice in voices:
            is_target = voice == opts.target_voice
            split = "target" if is_target else _split_for(piece, opts)
            group = f"{piece}#{voice}" if is_target else piece
            for line in lines:
                line = line.clipped(opts.max_seconds)
                if not line.notes:
                    continue
                wave = render_line(line, voice, opts.spec, renderer=opts.renderer,
                                   soundfont=soundfont, seed=zlib.crc32(line.name.encode()))
                feats = segment_features(wave, opts.spec, line)
                for rec in _segments(wave, feats, opts):
                    rec.update(voice=voice, piece=line.name, notes=1)
                    writer.add(rec, split=split, group=group)
                    counts[split] = counts.get(split, 0) + 1
            bar.update()
    bar.close()
    return counts


def _write_recordings(writer: DatasetWriter, files: list[Path], opts: PrepareOptions
                      ) -> dict[str, int]:
    voice = opts.recordings_voice or files[0].parent.name
    counts: dict[str, int] = {}
    ratios = {opts.recordings_split: 0.8, "dev": 0.2} if len(files) >= 3 else {
        opts.recordings_split: 1.0}
    spec = SplitSpec(salt=opts.salt, ratios=ratios)
    skipped: list[str] = []
    bar = _Progress(len(files), "reading recordings")
    for path in files:
        bar.update()
        try:
            wave = load_audio(path, opts.spec.sample_rate)
        except DataError as e:
            skipped.append(f"{path.name}: {e}")
            log.warning("skipping %s", e)
            continue
        midi = next((path.with_suffix(s) for s in MIDI_SUFFIXES if path.with_suffix(s).is_file()),
                    None)
        line = None
        if midi is not None:
            lines = lines_from_midi(load_midi(midi), path.stem, merge=True)
            line = lines[0] if lines else None
        feats = segment_features(wave, opts.spec, line)
        split = assign_split(path.stem, spec)
        for rec in _segments(wave, feats, opts):
            rec.update(voice=voice, piece=path.stem, notes=int(line is not None))
            writer.add(rec, split=split, group=path.stem)
            counts[split] = counts.get(split, 0) + 1
    bar.close()
    if not counts:
        detail = "; ".join(skipped[:5]) or "every file was shorter than one segment or unvoiced"
        raise DataError(
            f"no usable audio in the recordings ({len(files)} file(s)): {detail}. Provide "
            f"WAV/FLAC files of at least {opts.segment_seconds:g} s with audible pitched sound."
        )
    if skipped:
        print(f"skipped {len(skipped)} unreadable or silent file(s): " + "; ".join(skipped[:5]))
    return counts


def prepare_audio(source: Path | None, opts: PrepareOptions) -> Path:
    """Write segments + manifest to ``opts.out_dir``; see the module docstring for sources."""
    if source is not None and not source.exists():
        raise DataError(f"--source '{source}' does not exist. Give a directory of WAV/FLAC "
                        "recordings, MIDI files, or leave it out for the bundled chorales.")
    audio_files: list[Path] = []
    if source is not None:
        if source.is_file() and source.suffix.lower() in AUDIO_SUFFIXES:
            audio_files = [source]
        elif source.is_dir():
            audio_files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        elif source.suffix.lower() not in MIDI_SUFFIXES:
            raise DataError(f"--source '{source}' is neither audio ({', '.join(AUDIO_SUFFIXES)}) "
                            f"nor MIDI ({', '.join(MIDI_SUFFIXES)}).")
    kind = "recordings" if audio_files else ("midi" if source is not None else "chorales")
    if audio_files:
        voices = [opts.recordings_voice or audio_files[0].parent.name]
    else:
        voices = list(opts.voices) + ([opts.target_voice] if opts.target_voice else [])
        check_voices(voices, opts.renderer)
    meta = {
        "kind": kind,
        "sample_rate": opts.spec.sample_rate,
        "hop": opts.spec.hop,
        "segment_frames": round(opts.segment_seconds * opts.spec.frame_rate),
        "renderer": opts.renderer if kind != "recordings" else "recordings",
        "source": str(source) if source is not None else "music21 Bach chorales",
        "voices": voices,
        "target_voice": opts.target_voice if kind != "recordings" else "",
    }
    with DatasetWriter(opts.out_dir, salt=opts.salt, meta=meta, overwrite=opts.overwrite) as w:
        if audio_files:
            counts = _write_recordings(w, audio_files, opts)
        else:
            counts = _write_rendered(w, source, opts)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"wrote {sum(counts.values())} segments ({summary}) to {opts.out_dir}")
    return opts.out_dir


class SegmentDataset(Dataset):
    """One split of a prepared data set as dicts of tensors.

    Items: ``audio`` [N] float, ``f0``/``voiced``/``onset``/``loud`` [T] float, ``voice`` and
    ``piece`` str, ``notes`` int (1 when f0 came from notes, 0 when detected in the audio).
    """

    def __init__(self, data_dir: Path, split: str) -> None:
        self.shards = ShardedDataset(data_dir, split)
        self.meta = read_manifest(data_dir).meta

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.shards[i]
        return {
            "audio": torch.as_tensor(np.asarray(r["audio"]), dtype=torch.float32) / 32767.0,
            "f0": torch.as_tensor(np.asarray(r["f0"]), dtype=torch.float32),
            "voiced": torch.as_tensor(np.asarray(r["voiced"]), dtype=torch.float32),
            "onset": torch.as_tensor(np.asarray(r["onset"]), dtype=torch.float32),
            "loud": torch.as_tensor(np.asarray(r["loud"]), dtype=torch.float32),
            "voice": str(r["voice"]),
            "piece": str(r["piece"]),
            "notes": int(r["notes"]),
        }


def collate_segments(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack equal-length segments; voices stay a list of names."""
    out: dict[str, Any] = {
        k: torch.stack([s[k] for s in samples]) for k in ("audio", "f0", "voiced", "onset", "loud")
    }
    out["voice"] = [s["voice"] for s in samples]
    out["notes"] = torch.tensor([s["notes"] for s in samples], dtype=torch.long)
    return out
