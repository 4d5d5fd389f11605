"""The on-disk format of a sharded data set: constants, manifest types and reading.

A data set directory holds::

    manifest.json                written last; its presence means "complete"
    train-00000.rec  .idx        one record file + one index file per shard
    dev-00000.rec    .idx        ...

``*.rec``: a 32-byte header (magic ``TSREC``, format version, the data set id)
followed by encoded records back to back (append-only; nothing points backwards).

``*.idx``: a 32-byte header (magic ``TSIDX``, version, data set id, record count)
followed by one little-endian entry per record, read as a numpy structured array:
``offset u8 | length u4 | crc32 u4 | group u8`` (24 bytes; ``group`` is the
64-bit hash of the record's group key, used by the split checker).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = [
    "DATA_MAGIC",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "INDEX_DTYPE",
    "INDEX_MAGIC",
    "MANIFEST_NAME",
    "Manifest",
    "ShardInfo",
    "SplitInfo",
    "read_manifest",
]

FORMAT_NAME = "torchsuite-shards"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
HEADER_SIZE = 32
DATA_MAGIC = b"TSREC\x00"
INDEX_MAGIC = b"TSIDX\x00"
# magic(6) version(u16) dataset id(16) record count or reserved(u64)
HEADER = struct.Struct("<6sH16sQ")
INDEX_DTYPE = np.dtype(
    [("offset", "<u8"), ("length", "<u4"), ("crc32", "<u4"), ("group", "<u8")]
)


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the manifest describes it.

    Attributes:
        file: Record file name, relative to the data set directory.
        index: Index file name.
        records: Number of records.
        bytes: Size of the record file in bytes (header included).
        blake2b: Hex blake2b-256 digest of the whole record file.
        index_blake2b: Hex blake2b-256 digest of the whole index file.
    """

    file: str
    index: str
    records: int
    bytes: int
    blake2b: str
    index_blake2b: str


@dataclass(frozen=True)
class SplitInfo:
    """One split: its shards in order; record ``i`` of the split is found by cumulative counts."""

    name: str
    shards: tuple[ShardInfo, ...]

    @property
    def num_records(self) -> int:
        """Records in the split."""
        return sum(s.records for s in self.shards)

    @property
    def num_bytes(self) -> int:
        """Bytes of record files in the split."""
        return sum(s.bytes for s in self.shards)

    def offsets(self) -> np.ndarray:
        """Cumulative record counts, ``[0, n0, n0+n1, ...]`` (int64, one per shard + 1)."""
        counts = np.fromiter((s.records for s in self.shards), dtype=np.int64,
                             count=len(self.shards))
        return np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])


@dataclass(frozen=True)
class Manifest:
    """A parsed ``manifest.json``.

    Attributes:
        path: The manifest file.
        format_version: On-disk format version.
        dataset_id: Random hex id written into every shard header of this data set.
        salt: The split salt records were assigned with.
        splits: Split name -> :class:`SplitInfo`.
        meta: Free-form metadata given to the writer (vocabulary, sample rate, ...).
        created: ISO-8601 creation time (UTC).
        preprocess: Entries saved with the data set by ``torchsuite.core.data.preprocess``
            (feature statistics, label files), by name.
    """

    path: Path
    format_version: int
    dataset_id: str
    salt: str
    splits: dict[str, SplitInfo]
    meta: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    preprocess: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The data set directory."""
        return self.path.parent

    def split(self, name: str) -> SplitInfo:
        """The split called ``name``.

        Raises:
            DataError: If the split is unknown or holds no records.
        """
        info = self.splits.get(name)
        if info is None:
            raise DataError(
                f"{self.path} has no split {name!r}; it has {sorted(self.splits)}. "
                "Pick one of those, or re-run prepare so that the split receives records."
            )
        if info.num_records == 0:
            raise DataError(
                f"Split {name!r} in {self.path} is empty (0 records). The split ratios or the "
                "target predicate sent no group there; change them and re-run prepare, or "
                "use another split."
            )
        return info

    def sizes(self) -> dict[str, int]:
        """Records per split."""
        return {k: v.num_records for k, v in self.splits.items()}


def read_manifest(data_dir: str | Path) -> Manifest:
    """Read and validate ``<data_dir>/manifest.json``.

    Args:
        data_dir: A directory written by :class:`~torchsuite.core.data.DatasetWriter`
            (or the manifest file itself).

    Raises:
        DataError: Missing or unreadable manifest, another format, or a format version
            this code cannot read — with what to do.
    """
    p = Path(data_dir)
    path = p if p.name == MANIFEST_NAME or p.is_file() else p / MANIFEST_NAME
    if not path.exists():
        hint = ""
        if path.parent.is_dir() and any(path.parent.glob(".tmp-write-*")):
            hint = (" A '.tmp-write-*' folder is there: a writer was interrupted before it "
                    "finished, so the data set is incomplete.")
        raise DataError(
            f"No manifest at {path}.{hint} A data set directory is complete only once its "
            "manifest.json is written. Run the task's `prepare` (or DatasetWriter) into "
            f"{path.parent}, or point to the directory that holds manifest.json."
        )
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            f"Cannot read manifest {path}: {e}. It is damaged; re-run prepare to rewrite it."
        ) from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise DataError(
            f"{path} is not a torchsuite shard manifest (expected \"format\": "
            f"\"{FORMAT_NAME}\"). Point to a directory written by DatasetWriter / prepare."
        )
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path} has shard format version {version!r}; this torchsuite reads version "
            f"{FORMAT_VERSION}. Re-run prepare with this version to rewrite the data set "
            "(or install the torchsuite version that wrote it)."
        )
    try:
        splits = {
            name: SplitInfo(name, tuple(ShardInfo(**s) for s in info["shards"]))
            for name, info in raw["splits"].items()
        }
        return Manifest(
            path=path,
            format_version=version,
            dataset_id=str(raw["dataset_id"]),
            salt=str(raw.get("salt", "")),
            splits=splits,
            meta=dict(raw.get("meta") or {}),
            created=str(raw.get("created", "")),
            preprocess=dict(raw.get("preprocess") or {}),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(
            f"Manifest {path} is missing or has a malformed field ({e!r}). "
            "Re-run prepare to rewrite the data set."
        ) from e
