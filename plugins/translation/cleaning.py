"""Pair cleaning with a count per reason, and a fixed-size duplicate filter.

The duplicate filter is a Bloom filter sized once from ``capacity``, so memory stays
flat however long the corpus is (a hash set would grow with it). At capacity it
wrongly calls about 1% of new pairs duplicates; below capacity far fewer.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["BloomFilter", "Cleaner", "CleaningRules"]

# C0/C1 control characters except tab (TSV separator, removed before) - a stray \x00 or
# \x1b is a sign of binary junk or terminal codes in scraped text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class BloomFilter:
    """A Bloom filter over byte strings with ``k`` hashes derived from one blake2b digest.

    Args:
        capacity: Items it is sized for.
        error_rate: False-positive rate at capacity.
    """

    def __init__(self, capacity: int, error_rate: float = 0.01) -> None:
        bits = max(64, int(-capacity * math.log(error_rate) / math.log(2) ** 2))
        self.bits = bits
        self.k = max(1, round(bits / capacity * math.log(2)))
        # a bytearray, not numpy: per-bit access from Python is ~10x faster on it
        self.array = bytearray((bits + 7) // 8)

    def _positions(self, item: bytes) -> list[int]:
        d = hashlib.blake2b(item, digest_size=16).digest()
        h1 = int.from_bytes(d[:8], "little")
        h2 = int.from_bytes(d[8:], "little") | 1
        return [(h1 + i * h2) % self.bits for i in range(self.k)]

    def add(self, item: bytes) -> bool:
        """Insert ``item``; returns True if it was (probably) present already."""
        present = True
        array = self.array
        for p in self._positions(item):
            byte, mask = p >> 3, 1 << (p & 7)
            if not array[byte] & mask:
                present = False
                array[byte] |= mask
        return present

    def __contains__(self, item: bytes) -> bool:
        """True if ``item`` was (probably) added; never False for an added item."""
        return all(self.array[p >> 3] & (1 << (p & 7)) for p in self._positions(item))

    @property
    def nbytes(self) -> int:
        """Memory held by the bit array."""
        return len(self.array)


@dataclass(frozen=True)
class CleaningRules:
    """Limits applied to each pair (word counts split on whitespace)."""

    min_words: int = 1
    max_words: int = 200
    max_ratio: float = 3.0
    dedup: bool = True
    dedup_capacity: int = 1_000_000


@dataclass
class Cleaner:
    """Applies :class:`CleaningRules` and counts why pairs were dropped.

    Reasons (keys of :attr:`dropped`): ``empty``, ``control_chars`` (after removal
    nothing is left; otherwise the characters are stripped and counted in
    ``fixed_control_chars``), ``too_short``, ``too_long``, ``ratio``, ``duplicate``.
    """

    rules: CleaningRules = field(default_factory=CleaningRules)
    dropped: Counter[str] = field(default_factory=Counter)
    fixed: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        self._bloom = BloomFilter(self.rules.dedup_capacity) if self.rules.dedup else None

    @staticmethod
    def normalize(text: str) -> str:
        """NFC, control characters removed, whitespace collapsed."""
        text = unicodedata.normalize("NFC", text)
        return " ".join(text.split())

    def _fix(self, text: str) -> str:
        if _CONTROL.search(text):
            self.fixed["control_chars"] += 1
            text = _CONTROL.sub(" ", text)
        return self.normalize(text)

    def check(self, src: str, tgt: str) -> tuple[str, str] | None:
        """The cleaned pair, or None if it is dropped (the reason is counted)."""
        self.seen += 1
        had_control = bool(_CONTROL.search(src) or _CONTROL.search(tgt))
        src, tgt = self._fix(src), self._fix(tgt)
        reason = self._reason(src, tgt, had_control)
        if reason:
            self.dropped[reason] += 1
            return None
        if self._bloom is not None and self._bloom.add(f"{src}\t{tgt}".encode()):
            self.dropped["duplicate"] += 1
            return None
        self.kept += 1
        return src, tgt

    def _reason(self, src: str, tgt: str, had_control: bool) -> str:
        if not src or not tgt:
            return "control_chars" if had_control else "empty"
        r = self.rules
        ns, nt = len(src.split()), len(tgt.split())
        if min(ns, nt) < r.min_words:
            return "too_short"
        if max(ns, nt) > r.max_words:
            return "too_long"
        # Very short pairs ("Ja." / "Yes, I do.") have noisy ratios; judge from 5 words on.
        if max(ns, nt) >= 5 and max(ns, nt) / max(1, min(ns, nt)) > r.max_ratio:
            return "ratio"
        return ""

    def report(self) -> dict[str, object]:
        """Counts for the prepare report."""
        return {
            "read": self.seen,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "fixed": dict(sorted(self.fixed.items())),
        }
