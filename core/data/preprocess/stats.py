"""Streaming, mergeable per-feature statistics: count, mean, variance, min, max, histogram.

:class:`FeatureStats` follows Welford's update, batched with Chan et al.'s pairwise
merge, in float64. Two partial results (two shards, two DataLoader workers, two
ranks) merge exactly as if one pass had seen both, so statistics over a data set
larger than memory are computed shard by shard, in parallel, and combined.

Values that are NaN or +-Inf are skipped per feature and counted (``nonfinite``),
so one bad sensor reading does not poison the mean.

Example::

    from torchsuite.core.data.preprocess import compute_stats, save_stats, load_stats

    stats = compute_stats("data/drives", "train", key="sensors", bins=32)  # shard by shard
    save_stats("data/drives", "sensors", stats)        # into manifest.json
    stats = load_stats("data/drives", "sensors")
    print(stats.mean, stats.std, stats.histogram.shape)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ...errors import DataError
from .._manifest import read_manifest
from ..shards import ShardReader
from ._store import get_entry, put_entry

__all__ = [
    "FeatureStats",
    "compute_stats",
    "load_stats",
    "save_stats",
]

ArrayLike = torch.Tensor | np.ndarray


def as_rows(x: ArrayLike, feature_dim: int = -1) -> np.ndarray:
    """View ``x`` as float64 rows ``[N, F]``: ``feature_dim`` holds the features, every other
    dimension is a sample axis (time steps, pixels, batch)."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 0:
        a = a.reshape(1)
    a = np.moveaxis(a, feature_dim, -1)
    return a.reshape(-1, a.shape[-1]).astype(np.float64, copy=False)


class FeatureStats:
    """Per-feature running statistics that merge exactly.

    Args:
        num_features: Features per row; ``None`` takes it from the first update.
        feature_dim: The dimension of an input tensor that holds the features (the others
            are flattened into rows). Use ``-1`` for ``[..., F]`` (sensor channels),
            ``-2`` for ``[n_mels, time]`` spectrograms.
        bins: Histogram bins per feature (0: no histogram).
        hist_range: ``(low, high)`` of the histogram, the same for every feature; values
            outside fall into the first/last bin. Required when ``bins > 0``, so that
            partial histograms share their edges and add up.

    Attributes:
        count: Finite values seen per feature (int64 ``[F]``).
        mean: Mean per feature (float64 ``[F]``; NaN where ``count`` is 0).
        m2: Sum of squared deviations from the mean per feature.
        min: Minimum per feature (``+inf`` where none).
        max: Maximum per feature (``-inf`` where none).
        histogram: ``[F, bins]`` int64 counts, or ``None``.
        nonfinite: NaN/Inf values skipped, per feature.
        rows: Rows seen (finite or not).
    """

    def __init__(self, num_features: int | None = None, *, feature_dim: int = -1,
                 bins: int = 0, hist_range: tuple[float, float] | None = None) -> None:
        if bins < 0:
            raise ValueError("bins must be >= 0")
        if bins and (hist_range is None or not hist_range[0] < hist_range[1]):
            raise ValueError("a histogram needs hist_range=(low, high) with low < high")
        self.feature_dim = int(feature_dim)
        self.bins = int(bins)
        self.hist_range = (float(hist_range[0]), float(hist_range[1])) if hist_range else None
        self.num_features: int | None = None
        self.rows = 0
        if num_features is not None:
            self._alloc(int(num_features))

    def _alloc(self, f: int) -> None:
        self.num_features = f
        self.count = np.zeros(f, np.int64)
        self.mean = np.full(f, np.nan)
        self.m2 = np.zeros(f)
        self.min = np.full(f, np.inf)
        self.max = np.full(f, -np.inf)
        self.nonfinite = np.zeros(f, np.int64)
        self.histogram = np.zeros((f, self.bins), np.int64) if self.bins else None

    # ----------------------------------------------------------------- update/merge
    def update(self, x: ArrayLike) -> FeatureStats:
        """Add the rows of ``x`` (any shape; features along ``feature_dim``)."""
        rows = as_rows(x, self.feature_dim)
        if self.num_features is not None and rows.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features along dim "
                             f"{self.feature_dim}, got {rows.shape[1]} (shape {np.shape(x)})")
        return self.update_rows(rows)

    def update_rows(self, rows: np.ndarray) -> FeatureStats:
        """Add float64 rows ``[N, F]`` already laid out as features-last (see :func:`as_rows`)."""
        if self.num_features is None:
            self._alloc(rows.shape[1])
        if rows.ndim != 2 or rows.shape[1] != self.num_features:
            raise ValueError(f"expected rows [N, {self.num_features}], got {rows.shape}")
        if len(rows) == 0:
            return self
        finite = np.isfinite(rows)
        n = finite.sum(0)
        z = np.where(finite, rows, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = z.sum(0) / n
            m2 = (np.where(finite, rows - mean, 0.0) ** 2).sum(0)
        part = FeatureStats.__new__(FeatureStats)
        part.__dict__.update(feature_dim=self.feature_dim, bins=self.bins,
                             hist_range=self.hist_range, num_features=self.num_features,
                             rows=len(rows), count=n.astype(np.int64), mean=mean, m2=m2,
                             nonfinite=(~finite).sum(0).astype(np.int64))
        part.min = np.where(finite, rows, np.inf).min(0)
        part.max = np.where(finite, rows, -np.inf).max(0)
        part.histogram = self._hist(rows, finite) if self.bins else None
        return self.merge(part)

    def _hist(self, rows: np.ndarray, finite: np.ndarray) -> np.ndarray:
        assert self.hist_range is not None
        lo, hi = self.hist_range
        b = np.floor((rows - lo) / (hi - lo) * self.bins)
        b = np.clip(np.nan_to_num(b, nan=0.0, posinf=self.bins - 1, neginf=0),
                    0, self.bins - 1).astype(np.int64)
        f = rows.shape[1]
        flat = (b + np.arange(f)[None, :] * self.bins)[finite]  # one bincount for all features
        return np.bincount(flat, minlength=f * self.bins).reshape(f, self.bins)

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Fold ``other`` into this one (in place; returns ``self``).

        Raises:
            ValueError: Different feature counts or histogram settings.
        """
        if other.num_features is None:
            self.rows += other.rows
            return self
        if self.num_features is None:
            self._alloc(other.num_features)
        if other.num_features != self.num_features:
            raise ValueError(f"cannot merge stats of {other.num_features} features into "
                             f"{self.num_features}")
        if (other.bins, other.hist_range) != (self.bins, self.hist_range):
            raise ValueError("cannot merge stats with different histogram bins/range")
        na, nb = self.count.astype(np.float64), other.count.astype(np.float64)
        n = na + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            mean = np.where(na == 0, other.mean,
                            np.where(nb == 0, self.mean, self.mean + delta * nb / n))
            m2 = np.where(na == 0, other.m2, np.where(
                nb == 0, self.m2, self.m2 + other.m2 + delta * delta * na * nb / n))
        self.mean, self.m2 = mean, m2
        self.count = self.count + other.count
        self.min = np.minimum(self.min, other.min)
        self.max = np.maximum(self.max, other.max)
        self.nonfinite = self.nonfinite + other.nonfinite
        self.rows += other.rows
        if self.histogram is not None and other.histogram is not None:
            self.histogram = self.histogram + other.histogram
        return self

    @classmethod
    def merged(cls, parts: Iterable[FeatureStats]) -> FeatureStats:
        """Merge partial statistics (in the order given) into a new object."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to merge")
        out = cls(feature_dim=parts[0].feature_dim, bins=parts[0].bins,
                  hist_range=parts[0].hist_range)
        for p in parts:
            out.merge(p)
        return out

    def all_reduce(self) -> FeatureStats:
        """Merge the statistics of every torch.distributed rank (in rank order), in place,
        so all ranks end up with the same result. A no-op without an initialised group."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self.to_dict())
        total = FeatureStats.merged(FeatureStats.from_dict(d) for d in gathered)
        self.__dict__.update(total.__dict__)
        return self

    # ----------------------------------------------------------------- results
    @property
    def var(self) -> np.ndarray:
        """Unbiased variance per feature (``m2 / (count - 1)``; NaN below 2 values)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 1, self.m2 / (self.count - 1), np.nan)

    @property
    def std(self) -> np.ndarray:
        """Unbiased standard deviation per feature."""
        return np.sqrt(self.var)

    @property
    def hist_edges(self) -> np.ndarray | None:
        """The ``bins + 1`` histogram edges, or ``None``."""
        if not self.bins or self.hist_range is None:
            return None
        return np.linspace(self.hist_range[0], self.hist_range[1], self.bins + 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (lists of numbers; infinities and NaN kept as JSON extensions)."""
        d: dict[str, Any] = {
            "feature_dim": self.feature_dim, "bins": self.bins,
            "hist_range": list(self.hist_range) if self.hist_range else None,
            "rows": self.rows, "num_features": self.num_features,
        }
        if self.num_features is not None:
            d.update(count=self.count.tolist(), mean=self.mean.tolist(), m2=self.m2.tolist(),
                     min=self.min.tolist(), max=self.max.tolist(),
                     nonfinite=self.nonfinite.tolist(),
                     histogram=self.histogram.tolist() if self.histogram is not None else None)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureStats:
        """Rebuild from :meth:`to_dict` output."""
        hr = d.get("hist_range")
        out = cls(feature_dim=int(d["feature_dim"]), bins=int(d["bins"]),
                  hist_range=tuple(hr) if hr else None)
        out.rows = int(d.get("rows", 0))
        if d.get("num_features") is not None:
            out._alloc(int(d["num_features"]))
            out.count = np.asarray(d["count"], np.int64)
            out.mean = np.asarray(d["mean"], np.float64)
            out.m2 = np.asarray(d["m2"], np.float64)
            out.min = np.asarray(d["min"], np.float64)
            out.max = np.asarray(d["max"], np.float64)
            out.nonfinite = np.asarray(d["nonfinite"], np.int64)
            if d.get("histogram") is not None:
                out.histogram = np.asarray(d["histogram"], np.int64)
        return out

    def summary(self, names: Sequence[str] | None = None, limit: int = 16) -> str:
        """A small text table: feature, count, mean, std, min, max, non-finite."""
        if self.num_features is None:
            return "no data"
        names = list(names) if names else [str(i) for i in range(self.num_features)]
        lines = [f"{'feature':>12} {'count':>9} {'mean':>11} {'std':>11} {'min':>11} "
                 f"{'max':>11} {'nonfinite':>9}"]
        for i in range(min(self.num_features, limit)):
            lines.append(f"{names[i][:12]:>12} {self.count[i]:>9} {self.mean[i]:>11.4g} "
                         f"{self.std[i]:>11.4g} {self.min[i]:>11.4g} {self.max[i]:>11.4g} "
                         f"{self.nonfinite[i]:>9}")
        if self.num_features > limit:
            lines.append(f"... {self.num_features - limit} more features")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"FeatureStats(features={self.num_features}, rows={self.rows}, "
                f"feature_dim={self.feature_dim}, bins={self.bins})")


# --------------------------------------------------------------------------- over shards


Extract = Callable[[Any], ArrayLike]


def _extractor(key: str | Extract) -> Extract:
    if callable(key):
        return key

    def get(rec: Any) -> ArrayLike:
        try:
            return rec[key]
        except (KeyError, TypeError) as e:
            have = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            raise DataError(f"Records have no field {key!r} (they have {have}). Pass the "
                            "field that holds the features, or a function.") from e

    return get


class _ShardStatsJob(Dataset):
    """Item ``k``: the statistics of shard ``k`` (run in DataLoader workers)."""

    def __init__(self, reader: ShardReader, get: Extract, proto: dict[str, Any],
                 max_records: int | None) -> None:
        self.reader, self.get, self.proto, self.max_records = reader, get, proto, max_records

    def __len__(self) -> int:
        return len(self.reader.info.shards)

    def __getitem__(self, k: int) -> dict[str, Any]:
        stats = FeatureStats.from_dict(self.proto)
        n = self.reader.info.shards[k].records
        if self.max_records is not None:
            n = min(n, self.max_records)
        start = int(self.reader.offsets[k])
        buf: list[np.ndarray] = []
        held = 0
        for lo in range(0, n, 256):
            hi = min(lo + 256, n)
            for j, raw in enumerate(self.reader.read_raw_range(start + lo, start + hi)):
                rows = as_rows(self.get(self.reader.decode(raw, start + lo + j)),
                               stats.feature_dim)
                if buf and rows.shape[1] != buf[0].shape[1]:
                    raise DataError(
                        f"Record {start + lo + j} of split {self.reader.split!r} has "
                        f"{rows.shape[1]} features, earlier records {buf[0].shape[1]}.")
                buf.append(rows)
                held += rows.size
                if held >= 1 << 16:  # update in blocks of ~512 KiB, not per record
                    stats.update_rows(np.concatenate(buf))
                    buf, held = [], 0
        if buf:
            stats.update_rows(np.concatenate(buf))
        return stats.to_dict()


def compute_stats(
    data_dir: str | Path,
    split: str = "train",
    key: str | Extract = "x",
    *,
    feature_dim: int = -1,
    bins: int = 0,
    hist_range: tuple[float, float] | None = None,
    num_workers: int = 0,
    max_records_per_shard: int | None = None,
) -> FeatureStats:
    """Statistics of one field over a split, computed shard by shard and merged.

    Each shard is reduced on its own (in ``num_workers`` DataLoader workers when > 0) and
    the partial results are merged in shard order, so the result does not depend on the
    worker count. Memory: one record at a time per worker.

    Args:
        data_dir: Data set directory.
        split: Split to describe (fit normalisation on ``train`` only, so dev/test stay
            unseen).
        key: Record field holding the features, or a function ``record -> array``.
        feature_dim: Dimension of that array holding the features.
        bins: Histogram bins per feature (0: none).
        hist_range: Histogram range; if omitted with ``bins > 0``, a first pass finds the
            global min/max and the histogram spans it.
        num_workers: DataLoader worker processes.
        max_records_per_shard: Look at only the first records of each shard (a quick
            estimate on large data sets).

    Raises:
        DataError: Missing manifest/split, or records without ``key``.
    """
    reader = ShardReader(read_manifest(data_dir), split)
    get = _extractor(key)
    if bins and hist_range is None:
        first = compute_stats(data_dir, split, key, feature_dim=feature_dim,
                              num_workers=num_workers,
                              max_records_per_shard=max_records_per_shard)
        if first.num_features is None or not np.isfinite(first.min).any():
            raise DataError(f"Field {key!r} of split {split!r} in {data_dir} holds no finite "
                            "value; cannot build a histogram.")
        lo = float(np.min(first.min[np.isfinite(first.min)]))
        hi = float(np.max(first.max[np.isfinite(first.max)]))
        hist_range = (lo, hi if hi > lo else lo + 1.0)
    proto = FeatureStats(feature_dim=feature_dim, bins=bins, hist_range=hist_range).to_dict()
    job = _ShardStatsJob(reader, get, proto, max_records_per_shard)
    loader = DataLoader(job, batch_size=None, num_workers=num_workers)
    return FeatureStats.merged(FeatureStats.from_dict(d) for d in loader)


# --------------------------------------------------------------------------- persistence


def save_stats(data_dir: str | Path, name: str, stats: FeatureStats, *,
               split: str = "train") -> Path:
    """Store ``stats`` under ``name`` in the data set's ``manifest.json`` (section
    ``"preprocess"``), atomically (temp file + fsync + rename); shards are untouched.

    A data set rewritten by ``DatasetWriter`` gets a fresh manifest, so statistics of
    the old data never survive into the new one. (Inside ``prepare`` you can instead
    call ``DatasetWriter.add_stats`` before the writer closes.)

    Returns:
        The manifest path.
    """
    if stats.num_features is None:
        raise DataError(f"Statistics {name!r} are empty (no rows seen); nothing to save.")
    return put_entry(data_dir, name, stats_entry(stats, split))


def stats_entry(stats: FeatureStats, split: str) -> dict[str, Any]:
    """The manifest entry for ``stats``."""
    return {"kind": "feature_stats", "split": split, **stats.to_dict()}


def load_stats(data_dir: str | Path, name: str) -> FeatureStats:
    """Statistics saved by :func:`save_stats` (or ``DatasetWriter.add_stats``).

    Raises:
        DataError: The manifest has no statistics called ``name`` (naming the ones it has).
    """
    _, entry = get_entry(
        data_dir, name, "feature_stats",
        f"Compute them with compute_stats(...) and save_stats(data_dir, {name!r}, stats), "
        "or run the task's prepare again.")
    return FeatureStats.from_dict(entry)
