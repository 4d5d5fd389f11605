"""``suite prepare music``: corpus or MIDI directory -> tokens -> core shards + manifest."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torchsuite.core import DataError
from torchsuite.core.data.shards import DatasetWriter
from torchsuite.core.data.split import SplitSpec, assign_split

from .events import Piece
from .readers import ReadResult, read_corpus, read_midi_dir
from .tokenizer import MusicTokenizer

if TYPE_CHECKING:
    from .task import MusicConfig

__all__ = ["lyrics_text", "prepare_music"]


def lyrics_text(piece: Piece) -> str:
    """The first verse of a piece's melody lyrics: ``"Aus mei-nes Her-zens"``.

    Syllables ending in ``-`` continue a word (music21 ``syllabic`` begin/middle).
    """
    out: list[str] = []
    for n in piece.melody(0):
        if n.lyric:
            out.append(n.lyric)
    text = " ".join(out)
    return text.replace("- ", "-")


def _content_key(piece: Piece) -> str:
    """Digest of the notes: the chorale iterator lists some chorales twice."""
    h = hashlib.blake2b(digest_size=12)
    h.update(np.array([(n.start, n.track, n.pitch, n.dur) for n in piece.notes],
                      dtype=np.int32).tobytes())
    return h.hexdigest()


def prepare_music(cfg: MusicConfig, data_dir: Path, tok: MusicTokenizer,
                  source: Path | None) -> Path:
    """Read, tokenize, split by piece and write shards; print a summary and return the dir."""
    d = cfg.data
    if (data_dir / "manifest.json").exists() and not d.overwrite:
        # checked before the (slow) reading; the writer would refuse anyway
        raise DataError(f"{data_dir} already holds a prepared data set; use it as is, delete it, "
                        "or replace it with `suite prepare music --overwrite true`.")
    t0 = time.perf_counter()
    if source is not None:
        if not source.is_dir():
            raise DataError(f"--source '{source}' is not a directory; give a folder of MIDI files "
                            "(searched recursively for .mid/.midi/.kar).")
        result: ReadResult = read_midi_dir(source, style=d.source_style, workers=d.workers)
        if not result.pieces:
            raise DataError(f"no readable MIDI files under '{source}' ({result.files} found, "
                            f"{len(result.errors)} failed).\n{result.summary()}")
    else:
        styles = {s: int(d.max_files.get(s, 0)) for s in d.styles}
        print(f"reading music21 corpus styles {styles} with {d.workers} processes", flush=True)
        result = read_corpus(styles, workers=d.workers,
                             cache_dir=data_dir / "cache" if d.cache else None)
    t_read = time.perf_counter() - t0
    target = d.target_style if source is None else ""
    spec = SplitSpec(salt=d.salt, ratios={"train": 0.8, "dev": 0.1, "test": 0.1},
                     target=(lambda group, style: style == target) if target else None)
    seen: set[str] = set()
    duplicates = 0
    tokens_total = 0
    styles_count: dict[str, int] = {}
    meta = {"tokenizer": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in vars(tok.spec).items()},
            "vocab_size": tok.vocab_size, "source": str(source) if source else "music21",
            "files": result.files, "failed": len(result.errors),
            "errors": [f"{p}: {e}" for p, e in result.errors[:50]]}
    # splits are assigned here rather than by the writer's spec so a small MIDI folder
    # whose hash happens to leave dev or test empty still prepares (the task says so)
    with DatasetWriter(data_dir, salt=d.salt, meta=meta, overwrite=d.overwrite) as writer:
        for piece in sorted(result.pieces, key=lambda p: p.name):
            key = _content_key(piece)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            ids = tok.encode(piece)
            tokens_total += len(ids)
            styles_count[piece.style] = styles_count.get(piece.style, 0) + 1
            writer.add({"tokens": np.asarray(ids, dtype=np.int16), "name": piece.name,
                        "style": piece.style, "lyrics": lyrics_text(piece)},
                       split=assign_split(piece.name, spec, piece.style), group=piece.name)
        counts = dict(writer.counts)
    elapsed = time.perf_counter() - t0
    pieces = sum(counts.values())
    print(result.summary())
    print(f"{pieces} pieces ({duplicates} exact duplicates dropped), {tokens_total} tokens, "
          f"styles {styles_count}, splits {counts}")
    print(f"prepared in {elapsed:.1f}s (reading {t_read:.1f}s, {pieces / max(elapsed, 1e-9):.1f} "
          f"pieces/s); wrote {data_dir}", flush=True)
    return data_dir
