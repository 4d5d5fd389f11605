"""Readers: music21's bundled corpus (styles) and directories of MIDI files.

Both return :class:`ReadResult` — the pieces plus per-file failures — and never
stop on a bad file: a corrupt, empty or unparsable input is counted, named in
the summary and skipped. music21 parsing is slow (~0.1-0.2 s per chorale, seconds
for a folk-song collection file), so files are parsed in a process pool and the
extracted pieces are cached as JSON keyed by (file, size, mtime, extractor version).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import DEFAULT_BPM, GRID, Note, Piece, piece_from_midi

__all__ = [
    "CORPUS_STYLES",
    "ReadResult",
    "corpus_files",
    "piece_from_json",
    "piece_to_json",
    "read_corpus",
    "read_midi_dir",
    "score_to_pieces",
]

#: Extraction logic version: bump to invalidate caches.
_EXTRACT_VERSION = 3
#: music21 corpus collections offered as styles (style name -> corpus composer name).
CORPUS_STYLES: dict[str, str] = {
    "bach": "chorales",
    "palestrina": "palestrina",
    "folk": "essenFolksong",
    "irish": "oneills1850",
    "trecento": "trecento",
    "monteverdi": "monteverdi",
    "beethoven": "beethoven",
    "mozart": "mozart",
}
MIDI_SUFFIXES = (".mid", ".midi", ".kar")


@dataclass
class ReadResult:
    """Pieces read plus the files that failed (path, error) and simple counts."""

    pieces: list[Piece] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    cached: int = 0

    def summary(self) -> str:
        lines = [f"{self.files} files, {len(self.pieces)} pieces, {len(self.errors)} failed"
                 + (f", {self.cached} from cache" if self.cached else "")]
        lines += [f"  skipped {p}: {e}" for p, e in self.errors[:10]]
        if len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- JSON


def piece_to_json(p: Piece) -> dict[str, Any]:
    return {"name": p.name, "style": p.style, "meters": p.meters, "tempos": p.tempos,
            "notes": [[n.start, n.track, n.pitch, n.dur, n.velocity, n.lyric] for n in p.notes]}


def piece_from_json(d: dict[str, Any]) -> Piece:
    return Piece([Note(*n) for n in d["notes"]], [tuple(m) for m in d["meters"]],
                 [tuple(t) for t in d["tempos"]], d["style"], d["name"])


# ---------------------------------------------------------------------------- music21


def _grid(ql: Any) -> int:
    return round(float(ql) * GRID)


def score_to_pieces(obj: Any, style: str, name: str, max_tracks: int = 16) -> list[Piece]:
    """Pieces from a music21 Score (one) or Opus (one per contained score)."""
    from music21 import stream

    if isinstance(obj, stream.Opus):
        return [p for i, sc in enumerate(obj.scores)
                for p in score_to_pieces(sc, style, f"{name}#{i}", max_tracks)]
    parts = list(obj.parts) or [obj]
    notes: list[Note] = []
    for track, part in enumerate(parts[:max_tracks]):
        for el in part.stripTies().flatten().notes:
            start, dur = _grid(el.offset), max(1, _grid(el.quarterLength))
            if el.quarterLength == 0:  # grace notes have no duration on the grid
                continue
            vel = el.volume.velocity if el.volume.velocity is not None else 64
            lyric = None
            if track == 0 and el.lyrics:
                first = el.lyrics[0]
                lyric = first.text + ("-" if first.syllabic in ("begin", "middle") else "")
            for pitch in el.pitches:
                notes.append(Note(start, track, int(pitch.midi), dur, int(vel), lyric))
    measures = list(parts[0].getElementsByClass("Measure"))
    meters: list[tuple[int, int]] = []
    for m in measures:
        length = _grid(m.duration.quarterLength)
        if length > 0 and (not meters or meters[-1][1] != length):
            meters.append((_grid(m.offset), length))
    if not meters or meters[0][0] != 0:
        ts = next(iter(obj.recurse().getElementsByClass("TimeSignature")), None)
        bar = _grid(ts.barDuration.quarterLength) if ts is not None else 4 * GRID
        meters.insert(0, (0, meters[0][0] if meters and meters[0][0] > 0 else bar))
    mm = next(iter(obj.flatten().getElementsByClass("MetronomeMark")), None)
    bpm = float(mm.number) if mm is not None and mm.number else DEFAULT_BPM
    if not notes:
        return []
    return [Piece(sorted(notes), meters, [(0, bpm)], style, name)]


def corpus_files(style: str, max_files: int = 0) -> list[str]:
    """Corpus paths of a style (``bach`` = the chorale iterator's entries)."""
    from music21 import corpus

    if style not in CORPUS_STYLES:
        from torchsuite.core import ConfigError

        raise ConfigError(f"unknown corpus style '{style}'; choose from {sorted(CORPUS_STYLES)}.")
    if style == "bach":
        files = [str(f) for f in corpus.chorales.Iterator(returnType="filename")]
    else:
        files = sorted(str(p) for p in corpus.getComposer(CORPUS_STYLES[style]))
        # music21 ships some works in two formats (.mxl and .rntxt analyses): keep scores
        files = [f for f in files if not f.endswith((".rntxt", ".txt"))]
    return files[:max_files] if max_files > 0 else files


def _cache_key(style: str, path: str) -> str:
    import music21

    stat = ""
    full = Path(path)
    if full.is_file():
        st = full.stat()
        stat = f"{st.st_size}:{int(st.st_mtime)}"
    raw = f"{_EXTRACT_VERSION}|{music21.__version__}|{style}|{path}|{stat}"
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def _parse_corpus_file(job: tuple[str, str, str | None]) -> tuple[str, list[dict] | None, str,
                                                                  bool]:
    """Worker: (style, corpus path, cache dir) -> (path, pieces as JSON or None, error, cached)."""
    style, path, cache_dir = job
    cache = Path(cache_dir) / f"{_cache_key(style, path)}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            return path, json.loads(cache.read_text()), "", True
        except (OSError, ValueError):
            pass  # unreadable cache entry: parse again
    try:
        import warnings

        from music21 import corpus

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = corpus.parse(path)
        name = _short_name(style, path)
        pieces = [piece_to_json(p) for p in score_to_pieces(obj, style, name)]
    except Exception as exc:
        return path, None, f"{type(exc).__name__}: {exc}"[:300], False
    if cache is not None:
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(pieces))
        os.replace(tmp, cache)
    return path, pieces, "", False


def _short_name(style: str, path: str) -> str:
    marker = "/corpus/"
    return f"{style}:{path.split(marker, 1)[1] if marker in path else path}"


def _pool_map(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> Iterator[Any]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # chunksize 1 keeps the big folk-song collection files from serialising the tail
        yield from pool.map(fn, jobs, chunksize=1)


def _progress(items: Iterable[Any], total: int, desc: str) -> Iterator[Any]:
    """tqdm on a terminal, otherwise a plain line every ~10%."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit="file")
        return
    step = max(1, total // 10)
    for i, item in enumerate(items, 1):
        if i % step == 0 or i == total:
            print(f"{desc}: {i}/{total} files", file=sys.stderr, flush=True)
        yield item


def read_corpus(styles: dict[str, int], *, workers: int = 2,
                cache_dir: Path | None = None) -> ReadResult:
    """Read music21 corpus styles; ``styles`` maps style -> max files (0 = all)."""
    jobs = [(style, f, str(cache_dir) if cache_dir else None)
            for style, limit in styles.items() for f in corpus_files(style, limit)]
    if cache_dir:
        cache_dir.mkdir(parents=True, exist_ok=True)
    result = ReadResult(files=len(jobs))
    for path, pieces, err, cached in _progress(_pool_map(_parse_corpus_file, jobs, workers),
                                                len(jobs), "reading music21 corpus"):
        if pieces is None:
            result.errors.append((path, err))
            continue
        result.cached += int(cached)
        result.pieces.extend(piece_from_json(p) for p in pieces)
    return result


# ---------------------------------------------------------------------------- MIDI


def _read_midi_file(job: tuple[str, str, str]) -> tuple[str, dict | None, str]:
    path, style, name = job
    try:
        import warnings

        import pretty_midi

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(path)
        piece = piece_from_midi(pm, style=style, name=name)
    except Exception as exc:
        return path, None, f"{type(exc).__name__}: {exc}"[:300]
    if not piece.notes:
        return path, None, "no notes (empty or drums only)"
    return path, piece_to_json(piece), ""


def read_midi_dir(root: Path, *, style: str = "unknown", workers: int = 1) -> ReadResult:
    """Every ``*.mid``/``*.midi``/``*.kar`` under ``root`` (recursive). Pieces are named
    by their path relative to ``root``, so the split of a file does not depend on where
    the folder lives or how its path was typed."""
    files = sorted(str(p) for p in Path(root).rglob("*")
                   if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
    result = ReadResult(files=len(files))
    jobs = [(f, style, Path(f).relative_to(root).as_posix()) for f in files]
    for path, piece, err in _progress(_pool_map(_read_midi_file, jobs, workers), len(jobs),
                                      f"reading MIDI under {root}"):
        if piece is None:
            result.errors.append((path, err))
        else:
            result.pieces.append(piece_from_json(piece))
    return result
