"""Streaming readers for parallel corpora: aligned text files (plain or .gz) or a TSV.

Nothing here holds more than one line per file in memory. :func:`read_pairs` yields
``(line_no, src, tgt, doc)`` and raises :class:`~torchsuite.core.DataError` naming the
file and line for undecodable bytes (with ``errors="strict"``) and for a TSV line
without two columns. :func:`check_alignment` is the first, counting pass that
``prepare`` runs before it writes anything: it reads both files to the end so the
error names both line counts and the first line that cannot be paired.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO

from torchsuite.core import DataError

__all__ = ["Corpus", "Pair", "check_alignment", "read_pairs"]

Pair = tuple[int, str, str, str]  # (1-based line number, source, target, document id or "")


@dataclass(frozen=True)
class Corpus:
    """One parallel corpus: two aligned files, or one TSV (``tgt`` empty)."""

    src: Path
    tgt: Path | None

    @classmethod
    def from_paths(cls, src: str, tgt: str, key: str = "data") -> Corpus:
        """Check the files exist and build the corpus.

        Raises:
            DataError: A path is empty or missing (the message names the config key).
        """
        if not src:
            raise DataError(
                f"no source corpus given ({key}.src is empty). Pass aligned files with "
                "`suite prepare translation --src train.de --tgt train.en` or a two-column "
                "TSV with `--src train.tsv`."
            )
        paths = [Path(src)] + ([Path(tgt)] if tgt else [])
        for p in paths:
            if not p.is_file():
                raise DataError(f"corpus file '{p}' does not exist (from {key}); check the path.")
        if not tgt and not _is_tsv(paths[0]):
            raise DataError(
                f"'{src}' is not a .tsv file and {key}.tgt is empty. Give the target side "
                "with --tgt FILE, or use a TSV (name ending in .tsv or .tsv.gz) with "
                "source<TAB>target per line."
            )
        return cls(paths[0], paths[1] if tgt else None)

    def describe(self) -> str:
        """Human-readable name of the corpus for messages."""
        return f"{self.src} + {self.tgt}" if self.tgt else str(self.src)


def _is_tsv(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".tsv") or name.endswith(".tsv.gz")


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _lines(path: Path, errors: str) -> Iterator[tuple[int, str]]:
    """``(line_no, text)`` without the line break; bounded memory (buffered reads)."""
    with _open_binary(path) as fh:
        buffered = io.BufferedReader(fh) if not isinstance(fh, io.BufferedReader) else fh
        for no, raw in enumerate(buffered, 1):
            try:
                text = raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}, line {no}: bytes that are not UTF-8 at byte {e.start} "
                    f"({raw[e.start:e.start + 4]!r}). Convert the file to UTF-8 (iconv), or "
                    "pass --errors replace (data.errors=\"replace\") to substitute U+FFFD."
                ) from None
            yield no, text.rstrip("\r\n")
    # gzip raises EOFError/BadGzipFile on truncated input; let the caller see the path.


def read_pairs(corpus: Corpus, errors: str = "strict") -> Iterator[Pair]:
    """Yield aligned pairs lazily.

    Raises:
        DataError: Undecodable bytes, a malformed TSV line, or one file ending before the
            other (the count pass of :func:`check_alignment` reports that first).
    """
    try:
        if corpus.tgt is None:
            for no, line in _lines(corpus.src, errors):
                cols = line.split("\t")
                if len(cols) not in (2, 3):
                    raise DataError(
                        f"{corpus.src}, line {no}: expected 2 tab-separated columns "
                        f"(source, target) or 3 (with a document id), found {len(cols)}. "
                        "Fix the line or remove it."
                    )
                yield no, cols[0], cols[1], cols[2] if len(cols) == 3 else ""
            return
        left, right = _lines(corpus.src, errors), _lines(corpus.tgt, errors)
        for n, (a, b) in enumerate(zip_longest(left, right)):
            if a is None or b is None:
                # count the rest of the longer file so the error names both totals
                extra = 1 + sum(1 for _ in (right if a is None else left))
                counts = (n, n + extra) if a is None else (n + extra, n)
                raise _misaligned(corpus, *counts)
            yield a[0], a[1], b[1], ""
    except (EOFError, gzip.BadGzipFile, OSError) as e:
        raise DataError(f"{corpus.describe()}: cannot read ({e}). Is the .gz file complete?") from e


def _misaligned(corpus: Corpus, n_src: int, n_tgt: int) -> DataError:
    shorter = corpus.src if n_src < n_tgt else corpus.tgt
    return DataError(
        f"misaligned corpus: {corpus.src} has {n_src} lines but {corpus.tgt} has "
        f"{n_tgt}; line {min(n_src, n_tgt) + 1} cannot be paired ({shorter} ends before it). "
        "Nothing was written. Give files with one sentence per line in the same order."
    )


def check_alignment(corpus: Corpus, errors: str = "strict") -> int:
    """Count pass: the number of pairs, after checking decoding and alignment.

    Returns:
        The number of aligned lines.

    Raises:
        DataError: Naming both line counts and the first line that cannot be paired
            (files of different length), or the file and line of undecodable bytes.
    """
    n = 0
    for _ in read_pairs(corpus, errors):
        n += 1
    return n
