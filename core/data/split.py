"""Group-aware, hash-based split assignment and a checker for split leakage.

A record goes to ``train``, ``dev``, ``test`` or ``target`` by a pinned 64-bit
hash (blake2b, 8-byte digest) of ``(salt, group key)`` — never Python's
``hash()`` (randomised per process) and never the record's position. So:

* every record of one group (one song, one document, one drive) lands in the
  same split, because the split depends only on the group key;
* adding new records never moves an existing one;
* changing the salt reshuffles everything (on purpose: a new salt is a new split).

``target`` (data for fine-tuning a trained model on a new, similar domain) is
chosen either by a predicate on the group (one composer, one domain, one town)
or by a hash ratio like the other splits.

Example::

    from torchsuite.core.data import SplitSpec, assign_split, check_splits

    spec = SplitSpec(salt="songs-v1", ratios={"train": 0.9, "dev": 0.05, "test": 0.05},
                     target=lambda group, meta: meta["composer"] == "Chopin")
    split = assign_split("bach/bwv846", spec, meta={"composer": "Bach"})   # "train"/"dev"/"test"
    report = check_splits([(split, "bach/bwv846", b"...record bytes...")])
    report.raise_if_bad()   # DataError naming the leaking groups / duplicates
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

__all__ = [
    "SPLIT_NAMES",
    "SplitReport",
    "SplitSpec",
    "assign_split",
    "check_dataset",
    "check_splits",
    "group_hash",
]

#: The four split names the suite knows, in their canonical order.
SPLIT_NAMES: tuple[str, ...] = ("train", "dev", "test", "target")

_TWO_64 = float(1 << 64)


def group_hash(group_key: str, salt: str = "") -> int:
    """The pinned 64-bit hash of ``(salt, group_key)``: blake2b with an 8-byte digest.

    Salt and key are joined by the byte ``0xff``, which never occurs in UTF-8, so
    ``("ab", "c")`` and ``("a", "bc")`` hash differently.

    Args:
        group_key: The group a record belongs to (song id, document id, drive id).
        salt: The data set's salt.

    Returns:
        An unsigned 64-bit integer, identical on every machine and Python version.
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(salt.encode("utf-8"))
    h.update(b"\xff")
    h.update(group_key.encode("utf-8"))
    return int.from_bytes(h.digest(), "little")


@dataclass(frozen=True)
class SplitSpec:
    """How records are assigned to splits.

    Attributes:
        salt: Mixed into the hash; a different salt gives a different (equally stable) split.
        ratios: Fraction of groups per split; keys among ``train``, ``dev``, ``test``,
            ``target``; values >= 0 summing to 1.
        target: Optional predicate ``(group_key, meta) -> bool``; groups for which it is
            true go to ``target`` whatever their hash. It must depend only on the group
            (the same answer for every record of a group), or groups would straddle splits.
        target_ratio: Fraction of the remaining groups (after the predicate) sent to
            ``target`` by hash, before ``ratios`` divide the rest.
    """

    salt: str = "torchsuite"
    ratios: Mapping[str, float] = field(
        default_factory=lambda: {"train": 0.8, "dev": 0.1, "test": 0.1}
    )
    target: Callable[[str, Any], bool] | None = None
    target_ratio: float = 0.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ratios) - set(SPLIT_NAMES))
        if unknown:
            raise ConfigError(
                f"SplitSpec.ratios has unknown split name(s) {unknown}; the splits are "
                f"{list(SPLIT_NAMES)}. Rename the key(s)."
            )
        bad = {k: v for k, v in self.ratios.items() if not (v >= 0 and math.isfinite(v))}
        if bad:
            raise ConfigError(f"SplitSpec.ratios must be finite and >= 0, got {bad}.")
        total = sum(self.ratios.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ConfigError(
                f"SplitSpec.ratios must sum to 1, got {dict(self.ratios)} (sum {total:g}). "
                "Adjust the fractions."
            )
        if not 0.0 <= self.target_ratio < 1.0:
            raise ConfigError(
                f"SplitSpec.target_ratio must be in [0, 1), got {self.target_ratio}."
            )

    def expected_splits(self) -> list[str]:
        """Splits this spec can produce (a ratio > 0, or a target predicate/ratio)."""
        names = [k for k in SPLIT_NAMES if self.ratios.get(k, 0.0) > 0]
        if (self.target is not None or self.target_ratio > 0) and "target" not in names:
            names.append("target")
        return names


def assign_split(group_key: str, spec: SplitSpec, meta: Any = None) -> str:
    """The split of every record of ``group_key``.

    Args:
        group_key: The record's group (all records sharing it land in the same split).
        spec: Ratios, salt and the optional ``target`` predicate.
        meta: Passed to ``spec.target`` (e.g. the composer of the song).

    Returns:
        One of ``train``, ``dev``, ``test``, ``target``.
    """
    if spec.target is not None and spec.target(group_key, meta):
        return "target"
    x = group_hash(group_key, spec.salt) / _TWO_64  # uniform in [0, 1)
    if spec.target_ratio > 0:
        if x < spec.target_ratio:
            return "target"
        x = (x - spec.target_ratio) / (1.0 - spec.target_ratio)
    acc = 0.0
    last = "train"
    for name in SPLIT_NAMES:
        r = spec.ratios.get(name, 0.0)
        if r <= 0:
            continue
        acc += r
        last = name
        if x < acc:
            return name
    return last  # x within float rounding of 1.0


@dataclass
class SplitReport:
    """What :func:`check_splits` found.

    Attributes:
        counts: Records per split.
        group_overlaps: Group keys that occur in more than one split, with those splits.
        duplicate_overlaps: Content digests (hex) of identical records found in more than
            one split, with those splits and one group key per split as an example.
    """

    counts: dict[str, int] = field(default_factory=dict)
    group_overlaps: dict[str, list[str]] = field(default_factory=dict)
    duplicate_overlaps: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no group and no exact duplicate crosses a split boundary."""
        return not self.group_overlaps and not self.duplicate_overlaps

    def __str__(self) -> str:
        lines = [f"records per split: {self.counts}"]
        if self.ok:
            lines.append("no group or duplicate crosses splits")
        for g, splits in list(self.group_overlaps.items())[:10]:
            lines.append(f"group {g!r} is in splits {splits}")
        for d, where in list(self.duplicate_overlaps.items())[:10]:
            lines.append(f"identical record {d[:16]} is in {where}")
        more = len(self.group_overlaps) + len(self.duplicate_overlaps) - 20
        if more > 0:
            lines.append(f"... and {more} more")
        return "\n".join(lines)

    def raise_if_bad(self, source: str = "the records") -> None:
        """Raise :class:`DataError` describing the leaks, if any."""
        if self.ok:
            return
        raise DataError(
            f"Split leakage in {source}: {len(self.group_overlaps)} group(s) and "
            f"{len(self.duplicate_overlaps)} exact duplicate record(s) occur in more than "
            f"one split.\n{self}\nAssign splits with assign_split(group_key, spec) using a "
            "group key shared by related records (song, document, drive), and de-duplicate "
            "the raw data before writing."
        )


def check_splits(records: Iterable[tuple[str, str, bytes]]) -> SplitReport:
    """Find group keys and exact duplicate records that occur in more than one split.

    Memory grows with the number of distinct groups and records (16 bytes of digest
    per record plus dictionary overhead); it is an offline check.

    Args:
        records: ``(split, group_key, content)`` triples; ``content`` is the record's
            bytes (for dict records, their encoded form).

    Returns:
        A :class:`SplitReport`.
    """
    group_splits: dict[str, set[str]] = {}
    # digest -> {split: example group}
    dup: dict[bytes, dict[str, str]] = {}
    counts: dict[str, int] = {}
    for split, group, content in records:
        counts[split] = counts.get(split, 0) + 1
        group_splits.setdefault(group, set()).add(split)
        d = hashlib.blake2b(content, digest_size=16).digest()
        where = dup.setdefault(d, {})
        where.setdefault(split, group)
    report = SplitReport(counts=counts)
    for g, s in group_splits.items():
        if len(s) > 1:
            report.group_overlaps[g] = sorted(s, key=_split_order)
    for d, where in dup.items():
        if len(where) > 1:
            report.duplicate_overlaps[d.hex()] = dict(
                sorted(where.items(), key=lambda kv: _split_order(kv[0]))
            )
    return report


def check_dataset(data_dir: str | Path) -> SplitReport:
    """Run the split checker over a data set written by ``DatasetWriter``.

    Groups are compared by the 64-bit group hash stored in each shard index (records
    added without a group are skipped for the group check); duplicates by a blake2b
    digest of each encoded record. Reads every record once.

    Args:
        data_dir: The data set directory.

    Returns:
        A :class:`SplitReport`; group keys appear as ``"group#<hash hex>"``.
    """
    from .shards import ShardReader, read_manifest  # local: shards imports this module

    manifest = read_manifest(data_dir)

    def records() -> Iterator[tuple[str, str, bytes]]:
        for split, info in manifest.splits.items():
            if info.num_records == 0:
                continue
            reader = ShardReader(manifest, split)
            for k, sh_info in enumerate(info.shards):
                shard = reader.shard(k)
                groups = shard.index["group"]
                for lo in range(0, sh_info.records, 1024):
                    hi = min(lo + 1024, sh_info.records)
                    for j, raw in enumerate(shard.read_range(lo, hi)):
                        g = int(groups[lo + j])
                        key = f"group#{g:016x}" if g else f"record#{split}/{k}/{lo + j}"
                        yield split, key, bytes(raw)
            reader.close()

    return check_splits(records())


def _split_order(name: str) -> tuple[int, str]:
    return (SPLIT_NAMES.index(name) if name in SPLIT_NAMES else len(SPLIT_NAMES), name)
