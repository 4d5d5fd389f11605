"""Indexed, append-only record shards: an atomic writer and a random-access reader.

Each split is stored as shard pairs ``<split>-NNNNN.rec`` (records back to back)
and ``<split>-NNNNN.idx`` (offset, length, crc32 and group hash per record, a
numpy structured array), plus one ``manifest.json`` per data set with the format
version, salt, split sizes and a blake2b checksum per shard file. Record *i* is
one index lookup and one ``pread`` away — no scanning, no unpickling. See
:mod:`torchsuite.core.data._manifest` for the byte layout.

Writing is atomic: shards are written into a hidden temp folder, fsynced, moved
into place, and ``manifest.json`` is written (temp + fsync + rename) last, so an
interrupted write never looks like a complete data set.

Example::

    from torchsuite.core.data import DatasetWriter, ShardedDataset, SplitSpec
    import torch

    spec = SplitSpec(salt="mydata-v1")
    with DatasetWriter("data/mydata", spec=spec, meta={"vocab": 512}) as w:
        for doc_id, tokens in my_documents():
            w.add({"tokens": torch.tensor(tokens), "id": doc_id}, group=doc_id)

    ds = ShardedDataset("data/mydata", "train")
    print(len(ds), ds[0]["tokens"].shape)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError
from ._codec import Record, decode, encode
from ._manifest import (
    DATA_MAGIC,
    FORMAT_NAME,
    FORMAT_VERSION,
    HEADER,
    HEADER_SIZE,
    INDEX_DTYPE,
    INDEX_MAGIC,
    MANIFEST_NAME,
    Manifest,
    ShardInfo,
    SplitInfo,
    read_manifest,
)
from .split import SplitSpec, assign_split, group_hash

__all__ = [
    "DatasetWriter",
    "Manifest",
    "ShardInfo",
    "ShardedDataset",
    "SplitInfo",
    "read_manifest",
]


# --------------------------------------------------------------------------- writer


@dataclass
class _OpenShard:
    name: str
    path: Path
    fh: BinaryIO
    hasher: Any
    entries: list[tuple[int, int, int, int]] = field(default_factory=list)
    size: int = HEADER_SIZE


class DatasetWriter:
    """Write records into per-split shards and a manifest, atomically.

    Args:
        out_dir: Data set directory (created if needed).
        salt: Split salt recorded in the manifest (default: ``spec.salt``, else
            ``"torchsuite"``).
        shard_bytes: Start a new shard once the current one would exceed this many bytes
            (a single larger record gets a shard of its own).
        meta: JSON-serialisable metadata stored in the manifest.
        spec: If given, :meth:`add` may omit ``split`` and the split is computed from the
            group key with :func:`assign_split`; on close every split the spec can produce
            must have received records.
        overwrite: Replace an existing data set in ``out_dir``. Without it, a directory
            that already holds ``manifest.json`` is refused so nothing is lost.

    Raises:
        DataError: ``out_dir`` already holds a data set and ``overwrite`` is false.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        salt: str | None = None,
        shard_bytes: int = 64 << 20,
        meta: dict[str, Any] | None = None,
        spec: SplitSpec | None = None,
        overwrite: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.spec = spec
        self.salt = salt if salt is not None else (spec.salt if spec else "torchsuite")
        if shard_bytes < 1:
            raise ValueError("shard_bytes must be >= 1")
        self.shard_bytes = int(shard_bytes)
        self.meta = dict(meta or {})
        try:
            json.dumps(self.meta)
        except (TypeError, ValueError) as e:
            raise DataError(f"DatasetWriter meta must be JSON-serialisable: {e}") from e
        self.overwrite = overwrite
        if (self.out_dir / MANIFEST_NAME).exists() and not overwrite:
            raise DataError(
                f"{self.out_dir} already holds a data set ({MANIFEST_NAME} exists). Choose "
                "another directory, delete it yourself, or pass overwrite=True "
                "(prepare: --overwrite) to replace it."
            )
        self.dataset_id = uuid.uuid4()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = self.out_dir / f".tmp-write-{self.dataset_id.hex[:12]}"
        self._tmp.mkdir()
        self._open: dict[str, _OpenShard] = {}
        self._done: dict[str, list[ShardInfo]] = {}
        self._closed = False
        self.counts: dict[str, int] = {}
        self._preprocess: dict[str, Any] = {}

    # -- context manager
    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- writing
    def add(
        self,
        record: Record,
        split: str | None = None,
        group: str | None = None,
        meta: Any = None,
    ) -> str:
        """Append one record.

        Args:
            record: ``bytes`` or a dict of tensors / arrays / str / numbers / bytes.
            split: Target split; if omitted, computed from ``group`` with the writer's spec.
            group: Group key (song, document, drive). Recorded as a 64-bit hash so the split
                checker can find groups that straddle splits.
            meta: Passed to the spec's ``target`` predicate when ``split`` is omitted.

        Returns:
            The split the record went to.
        """
        if self._closed:
            raise RuntimeError("DatasetWriter is closed")
        if split is None:
            if self.spec is None or group is None:
                raise ValueError("add() needs split=..., or group=... and a writer spec")
            split = assign_split(group, self.spec, meta)
        if not split or "/" in split or split.startswith("."):
            raise ValueError(f"invalid split name {split!r}")
        data = encode(record)
        shard = self._open.get(split)
        if shard is not None and shard.entries and shard.size + len(data) > self.shard_bytes:
            self._finish(split)
            shard = None
        if shard is None:
            shard = self._new_shard(split)
        crc = zlib.crc32(data)
        g = group_hash(group, self.salt) if group is not None else 0
        shard.fh.write(data)
        shard.hasher.update(data)
        shard.entries.append((shard.size, len(data), crc, g))
        shard.size += len(data)
        self.counts[split] = self.counts.get(split, 0) + 1
        return split

    def add_stats(self, name: str, stats: Any, split: str = "train") -> None:
        """Store feature statistics in the manifest this writer writes on close.

        Args:
            name: Name to load them by (``preprocess.load_stats(data_dir, name)``).
            stats: A :class:`~torchsuite.core.data.preprocess.FeatureStats`, typically
                updated with the training records while they were added.
            split: The split the statistics describe.
        """
        from .preprocess.stats import stats_entry  # local: preprocess imports this module

        if stats.num_features is None:
            raise DataError(f"Statistics {name!r} are empty (no rows seen); nothing to save.")
        self._preprocess[name] = stats_entry(stats, split)

    def _new_shard(self, split: str) -> _OpenShard:
        k = len(self._done.setdefault(split, []))
        name = f"{split}-{k:05d}"
        path = self._tmp / f"{name}.rec"
        fh = open(path, "wb")  # noqa: SIM115 - closed in _finish/abort
        header = HEADER.pack(DATA_MAGIC, FORMAT_VERSION, self.dataset_id.bytes, 0)
        fh.write(header)
        hasher = hashlib.blake2b(digest_size=32)
        hasher.update(header)
        shard = _OpenShard(name, path, fh, hasher)
        self._open[split] = shard
        return shard

    def _finish(self, split: str) -> None:
        shard = self._open.pop(split)
        shard.fh.flush()
        os.fsync(shard.fh.fileno())
        shard.fh.close()
        index = np.array(shard.entries, dtype=INDEX_DTYPE)
        idx_bytes = (
            HEADER.pack(INDEX_MAGIC, FORMAT_VERSION, self.dataset_id.bytes, len(index))
            + index.tobytes()
        )
        _write_synced(self._tmp / f"{shard.name}.idx", idx_bytes)
        self._done[split].append(
            ShardInfo(
                file=f"{shard.name}.rec",
                index=f"{shard.name}.idx",
                records=len(index),
                bytes=shard.size,
                blake2b=shard.hasher.hexdigest(),
                index_blake2b=hashlib.blake2b(idx_bytes, digest_size=32).hexdigest(),
            )
        )

    def close(self) -> Manifest:
        """Finish all shards, move them into place and write the manifest last.

        Raises:
            DataError: Nothing was written, or a split the spec can produce is empty
                (e.g. a ``target`` predicate that matched no group). Nothing is moved
                into the directory in that case.
        """
        if self._closed:
            return read_manifest(self.out_dir)
        for split in list(self._open):
            self._finish(split)
        empty: list[str] = []
        if self.spec is not None:
            empty = [s for s in self.spec.expected_splits() if self.counts.get(s, 0) == 0]
        if not self.counts or empty:
            self.abort()
            if not self.counts:
                raise DataError(
                    f"No records were added to the data set in {self.out_dir}; nothing was "
                    "written. Check that the raw input folder holds files the task can read."
                )
            why = (" The target predicate matched no group."
                   if "target" in empty and self.spec and self.spec.target else "")
            raise DataError(
                f"Split(s) {empty} received no records while writing {self.out_dir} "
                f"(counts: {self.counts}).{why} Change the split ratios/predicate or add "
                "data; nothing was written."
            )
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "dataset_id": self.dataset_id.hex,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "salt": self.salt,
            "meta": self.meta,
            "splits": {
                split: {
                    "records": sum(s.records for s in shards),
                    "bytes": sum(s.bytes for s in shards),
                    "shards": [s.__dict__ for s in shards],
                }
                for split, shards in sorted(self._done.items())
            },
        }
        if self._preprocess:
            manifest["preprocess"] = self._preprocess
        final = self.out_dir / MANIFEST_NAME
        old: Manifest | None = None
        if final.exists():  # overwrite=True (checked in __init__)
            with contextlib.suppress(DataError):
                old = read_manifest(self.out_dir)
            # Remove the old manifest first: from here until the new one lands, the
            # directory is visibly incomplete rather than a mix of old and new shards.
            final.unlink()
            _fsync_dir(self.out_dir)
            if old is not None:
                for info in old.splits.values():
                    for s in info.shards:
                        for f in (s.file, s.index):
                            with contextlib.suppress(FileNotFoundError):
                                (self.out_dir / f).unlink()
        for shards in self._done.values():
            for s in shards:
                os.replace(self._tmp / s.file, self.out_dir / s.file)
                os.replace(self._tmp / s.index, self.out_dir / s.index)
        _fsync_dir(self.out_dir)
        _write_synced(final, json.dumps(manifest, indent=1).encode("utf-8"))
        _fsync_dir(self.out_dir)
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._closed = True
        return read_manifest(self.out_dir)

    def abort(self) -> None:
        """Discard everything written so far (the directory is left as it was)."""
        for shard in self._open.values():
            shard.fh.close()
        self._open.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._closed = True


def _write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file, fsync and rename (atomic on POSIX)."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- reader


class _Shard:
    """An open shard: a file descriptor and its (verified) index.

    The descriptor is closed when the last reference goes away, so a shard evicted
    from a reader's cache stays usable by code still holding it.
    """

    __slots__ = ("crc", "fd", "index", "info", "length", "offset", "path")

    def __init__(self, root: Path, info: ShardInfo, dataset_id: str, manifest: Path) -> None:
        self.fd = -1
        self.info = info
        self.path = root / info.file
        idx_path = root / info.index
        try:
            idx_bytes = idx_path.read_bytes()
        except FileNotFoundError as e:
            raise DataError(
                f"Index file {idx_path} listed in {manifest} is missing. The data set is "
                "incomplete; re-run prepare."
            ) from e
        if hashlib.blake2b(idx_bytes, digest_size=32).hexdigest() != info.index_blake2b:
            raise DataError(
                f"Index {idx_path} does not match {manifest} (checksum mismatch): the file is "
                "corrupted or comes from another data set. Re-run prepare, or restore the "
                "directory as one unit."
            )
        magic, _ver, did, count = HEADER.unpack_from(idx_bytes)
        if magic != INDEX_MAGIC or did.hex() != dataset_id or count != info.records:
            raise DataError(
                f"Index {idx_path} does not belong to the data set of {manifest}. "
                "Re-run prepare."
            )
        self.index = np.frombuffer(idx_bytes, dtype=INDEX_DTYPE, offset=HEADER_SIZE,
                                   count=count)
        self.offset = self.index["offset"]
        self.length = self.index["length"]
        self.crc = self.index["crc32"]
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError as e:
            raise DataError(
                f"Shard {self.path} listed in {manifest} is missing. The data set is "
                "incomplete; re-run prepare."
            ) from e
        size = os.fstat(self.fd).st_size
        head = os.pread(self.fd, HEADER_SIZE, 0)
        if size != info.bytes:
            where = ""
            if size < info.bytes and count:
                # Name the first record that no longer fits: what a reader would have hit.
                ends = self.offset + self.length.astype(np.uint64)
                first = int(np.argmax(ends > size)) if (ends > size).any() else count - 1
                where = (f" Records {first}..{count - 1} of this shard are cut off "
                         f"(record {first} ends at byte {int(ends[first])}).")
            raise DataError(
                f"Shard {self.path} is {size} bytes but {manifest} says {info.bytes}: it was "
                f"{'truncated' if size < info.bytes else 'appended to or replaced'}.{where} "
                "Re-run prepare (or restore the file)."
            )
        if len(head) < HEADER_SIZE or HEADER.unpack(head)[0] != DATA_MAGIC:
            raise DataError(f"{self.path} is not a torchsuite record shard. Re-run prepare.")
        if HEADER.unpack(head)[2].hex() != dataset_id:
            raise DataError(
                f"Shard {self.path} belongs to data set {HEADER.unpack(head)[2].hex()}, but "
                f"{manifest} describes data set {dataset_id}: shards from two writes were "
                "mixed. Re-run prepare into an empty directory."
            )

    def __del__(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def read_raw(self, j: int, offset: int, length: int, crc: int) -> bytearray:
        """Checked bytes of record ``j`` (index fields passed in to avoid lookups)."""
        buf = bytearray(length)
        got = os.preadv(self.fd, [buf], offset)
        if got != length:
            raise DataError(
                f"Record {j} of shard {self.path} is truncated (wanted {length} bytes at "
                f"offset {offset}, got {got}). Re-run prepare."
            )
        if zlib.crc32(buf) != crc:
            raise DataError(
                f"Record {j} of shard {self.path} is corrupted (crc32 mismatch). "
                "Re-run prepare, or restore the shard from a good copy."
            )
        return buf

    def read_range(self, lo: int, hi: int) -> list[memoryview]:
        """Checked bytes of records ``lo..hi-1`` with a single read (sequential scans)."""
        if hi <= lo:
            return []
        start = int(self.offset[lo])
        end = int(self.offset[hi - 1]) + int(self.length[hi - 1])
        mv = memoryview(os.pread(self.fd, end - start, start))
        out: list[memoryview] = []
        for j, o, n, c in zip(range(lo, hi), self.offset[lo:hi].tolist(),
                              self.length[lo:hi].tolist(), self.crc[lo:hi].tolist()):
            rec = mv[o - start:o - start + n]
            if len(rec) != n:
                raise DataError(
                    f"Record {j} of shard {self.path} is truncated (wanted {n} bytes at "
                    f"offset {o}). Re-run prepare."
                )
            if zlib.crc32(rec) != c:
                raise DataError(
                    f"Record {j} of shard {self.path} is corrupted (crc32 mismatch). "
                    "Re-run prepare, or restore the shard from a good copy."
                )
            out.append(rec)
        return out


class ShardReader:
    """Random access to the records of one split, with a bounded cache of open shards.

    Safe to pickle into DataLoader workers (open files are not pickled) and to use after
    ``fork`` (reads use ``pread``, which has no shared file position).

    Args:
        manifest: The data set manifest.
        split: Split name.
        max_open: Shards kept open at once (file descriptors + indexes in memory).
    """

    def __init__(self, manifest: Manifest, split: str, max_open: int = 64) -> None:
        self.manifest = manifest
        self.split = split
        self.info: SplitInfo = manifest.split(split)
        self.offsets = self.info.offsets()
        self.max_open = max_open
        self._cache: OrderedDict[int, _Shard] = OrderedDict()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def shard(self, k: int) -> _Shard:
        """Open (or reuse) shard ``k``."""
        if self._pid != os.getpid():  # forked: start a cache of this process's own
            self._cache = OrderedDict()
            self._lock = threading.Lock()
            self._pid = os.getpid()
        with self._lock:
            sh = self._cache.get(k)
            if sh is not None:
                self._cache.move_to_end(k)
                return sh
        sh = _Shard(self.manifest.root, self.info.shards[k], self.manifest.dataset_id,
                    self.manifest.path)
        with self._lock:
            self._cache[k] = sh
            while len(self._cache) > self.max_open:
                self._cache.popitem(last=False)  # closed once no caller holds it
        return sh

    def locate(self, i: int) -> tuple[int, int]:
        """``(shard number, record number within the shard)`` of split record ``i``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range for split {self.split!r} of {n} records")
        i %= n
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return k, i - int(self.offsets[k])

    def _decode(self, raw: bytes | bytearray | memoryview, k: int, j: int) -> Record:
        try:
            return decode(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(
                f"Record {j} of shard {self.manifest.root / self.info.shards[k].file} cannot "
                f"be decoded ({e}). Re-run prepare."
            ) from e

    def read(self, i: int) -> Record:
        """Split record ``i``, decoded."""
        k, j = self.locate(i)
        sh = self.shard(k)
        raw = sh.read_raw(j, int(sh.offset[j]), int(sh.length[j]), int(sh.crc[j]))
        return self._decode(raw, k, j)

    def read_many(self, ids: np.ndarray) -> Iterator[Record]:
        """Decode split records ``ids`` (any order) in that order.

        Index lookups are vectorised per shard; each record is then one ``preadv`` into
        its own buffer, which decoded arrays/tensors use without a further copy.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        ks = np.searchsorted(self.offsets, ids, side="right") - 1
        js = ids - self.offsets[ks]
        offs = np.empty(len(ids), np.int64)
        lens = np.empty(len(ids), np.int64)
        crcs = np.empty(len(ids), np.int64)
        by_shard = np.argsort(ks, kind="stable")
        sorted_ks = ks[by_shard]
        cuts = np.flatnonzero(np.diff(sorted_ks)) + 1
        shards: dict[int, _Shard] = {}  # held for this call, whatever the cache evicts
        for grp in np.split(by_shard, cuts):
            k = int(ks[grp[0]])
            sh = shards[k] = self.shard(k)
            jj = js[grp]
            offs[grp] = sh.offset[jj]
            lens[grp] = sh.length[jj]
            crcs[grp] = sh.crc[jj]
        for k, j, o, n, c in zip(ks.tolist(), js.tolist(), offs.tolist(), lens.tolist(),
                                 crcs.tolist()):
            yield self._decode(shards[k].read_raw(j, o, n, c), k, j)

    def read_raw_range(self, start: int, stop: int) -> list[memoryview]:
        """Encoded bytes of split records ``start..stop-1`` (one read per shard touched)."""
        out: list[memoryview] = []
        while start < stop:
            k, j = self.locate(start)
            take = min(stop - start, self.info.shards[k].records - j)
            out.extend(self.shard(k).read_range(j, j + take))
            start += take
        return out

    def decode(self, raw: memoryview, i: int) -> Record:
        """Decode the raw bytes of split record ``i`` (errors name shard and record)."""
        return self._decode(raw, *self.locate(i))

    def close(self) -> None:
        """Drop all cached shards (their files close once unreferenced)."""
        self._cache.clear()


class ShardedDataset(Dataset):
    """Map-style view of one split: ``len(ds)``, ``ds[i]`` without scanning.

    Args:
        data_dir: Data set directory (holding ``manifest.json``).
        split: Split name (``train``, ``dev``, ``test``, ``target``).
        transform: Optional function applied to each decoded record.

    Raises:
        DataError: Missing manifest, unknown or empty split, wrong format version; on
            access, a missing/truncated/corrupted/foreign shard, naming shard and record.
    """

    def __init__(self, data_dir: str | Path, split: str, transform: Any = None) -> None:
        self.manifest = read_manifest(data_dir)
        self.split = split
        self.reader = ShardReader(self.manifest, split)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> Any:
        rec = self.reader.read(int(i))
        return self.transform(rec) if self.transform is not None else rec

    def __iter__(self) -> Iterator[Any]:
        for start in range(0, len(self), 256):
            stop = min(start + 256, len(self))
            for j, raw in enumerate(self.reader.read_raw_range(start, stop)):
                rec = self.reader.decode(raw, start + j)
                yield self.transform(rec) if self.transform is not None else rec

    def group_hashes(self) -> np.ndarray:
        """The 64-bit group hash of every record (uint64, in split order)."""
        parts = [self.reader.shard(k).index["group"].copy()
                 for k in range(len(self.reader.info.shards))]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint64)

    def verify(self) -> None:
        """Read every shard in full and check its blake2b against the manifest and every
        record's crc32.

        Raises:
            DataError: Naming the first bad shard (and record).
        """
        root = self.manifest.root
        for k, info in enumerate(self.reader.info.shards):
            sh = self.reader.shard(k)
            h = hashlib.blake2b(digest_size=32)
            with open(root / info.file, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != info.blake2b:
                # Find the record, if a record is the problem.
                if info.records:
                    sh.read_range(0, info.records)
                raise DataError(
                    f"Shard {root / info.file} does not match {self.manifest.path} "
                    "(blake2b mismatch). Re-run prepare, or restore the file."
                )
