"""Data cleaning helpers: NaN/Inf, exact duplicates and robust z-score outliers, counted.

Two forms:

* :func:`clean_rows` for an in-memory ``[N, F]`` array (drop or flag rows);
* :class:`RecordCleaner` for ``prepare`` loops, one record at a time, keeping counts
  for the prepare report (``cleaner.report.to_dict()``).

Outliers use the robust z-score of Iglewicz and Hoaglin,
``0.6745 * (x - median) / MAD`` per feature, with the usual cut-off 3.5: unlike the
mean/std z-score, the outliers themselves cannot hide by inflating the spread.

Example::

    from torchsuite.core.data.preprocess import RecordCleaner, RobustScale

    cleaner = RecordCleaner(outliers=RobustScale.fit(sample_rows(...)), threshold=6.0)
    for rec in raw_records():
        if cleaner.keep(rec["sensors"], content=rec_bytes):
            writer.add(rec, group=rec["drive"])
    print(cleaner.report)      # records 1000, kept 981, nonfinite 4, duplicate 12, outlier 3
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .stats import ArrayLike, as_rows

__all__ = [
    "CleaningReport",
    "RecordCleaner",
    "RobustScale",
    "clean_rows",
    "duplicate_rows",
    "nonfinite_rows",
    "outlier_rows",
    "robust_zscore",
]

#: Scales the MAD to the standard deviation of a normal distribution (1 / 1.4826).
_MAD_TO_SIGMA = 0.6745


@dataclass
class CleaningReport:
    """What cleaning found.

    Attributes:
        records: Records (or rows) examined.
        kept: Records kept (all of them when flagging).
        found: Count per reason (``nonfinite``, ``duplicate``, ``outlier``); a record is
            counted under the first reason that applies, in that order.
        mode: ``"drop"`` or ``"flag"``.
    """

    records: int = 0
    kept: int = 0
    found: dict[str, int] = field(
        default_factory=lambda: {"nonfinite": 0, "duplicate": 0, "outlier": 0})
    mode: str = "drop"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts for a prepare report."""
        return {"records": self.records, "kept": self.kept, "mode": self.mode, **self.found}

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.found.items())
        verb = "flagged" if self.mode == "flag" else "dropped"
        return f"records {self.records}, kept {self.kept} ({verb}: {parts})"


def nonfinite_rows(x: ArrayLike, feature_dim: int = -1) -> np.ndarray:
    """``[N]`` bool: rows holding any NaN or +-Inf."""
    return ~np.isfinite(as_rows(x, feature_dim)).all(1)


def duplicate_rows(x: ArrayLike, feature_dim: int = -1) -> np.ndarray:
    """``[N]`` bool: rows equal to an earlier row (the first occurrence is not flagged)."""
    rows = np.ascontiguousarray(as_rows(x, feature_dim))
    if len(rows) == 0:
        return np.zeros(0, bool)
    # Normalise -0.0 to 0.0 so equal numbers compare equal byte-wise.
    view = (rows + 0.0).view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1])))
    _, first = np.unique(view.ravel(), return_index=True)
    dup = np.ones(len(rows), bool)
    dup[first] = False
    return dup


@dataclass(frozen=True)
class RobustScale:
    """Per-feature median and MAD (median absolute deviation) of a reference sample."""

    median: np.ndarray
    mad: np.ndarray

    @classmethod
    def fit(cls, x: ArrayLike, feature_dim: int = -1) -> RobustScale:
        """Fit on finite values of ``x`` (per feature; NaN/Inf ignored)."""
        rows = as_rows(x, feature_dim)
        rows = np.where(np.isfinite(rows), rows, np.nan)
        med = np.nanmedian(rows, axis=0)
        mad = np.nanmedian(np.abs(rows - med), axis=0)
        return cls(med, mad)

    def zscore(self, x: ArrayLike, feature_dim: int = -1) -> np.ndarray:
        """``[N, F]`` robust z-scores; a feature with MAD 0 scores 0 where it equals the
        median and inf elsewhere (any deviation from a constant is an outlier)."""
        rows = as_rows(x, feature_dim)
        dev = rows - self.median
        with np.errstate(divide="ignore", invalid="ignore"):
            z = _MAD_TO_SIGMA * dev / self.mad
        zero = self.mad == 0
        if zero.any():
            z[:, zero] = np.where(dev[:, zero] == 0, 0.0, np.inf)
        return z

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"median": self.median.tolist(), "mad": self.mad.tolist()}


def robust_zscore(x: ArrayLike, scale: RobustScale | None = None,
                  feature_dim: int = -1) -> np.ndarray:
    """Robust z-scores of ``x``'s rows against ``scale`` (default: fitted on ``x``)."""
    return (scale or RobustScale.fit(x, feature_dim)).zscore(x, feature_dim)


def outlier_rows(x: ArrayLike, threshold: float = 3.5, scale: RobustScale | None = None,
                 feature_dim: int = -1) -> np.ndarray:
    """``[N]`` bool: rows with any feature's ``|robust z| > threshold`` (NaN rows: False;
    find those with :func:`nonfinite_rows`)."""
    z = np.abs(robust_zscore(x, scale, feature_dim))
    return np.nan_to_num(z, nan=0.0).max(1, initial=0.0) > threshold


def clean_rows(
    x: ArrayLike,
    *,
    nonfinite: bool = True,
    duplicates: bool = True,
    outliers: float | None = 3.5,
    scale: RobustScale | None = None,
    mode: str = "drop",
) -> tuple[torch.Tensor, dict[str, np.ndarray], CleaningReport]:
    """Clean the rows of an ``[N, F]`` array.

    Args:
        x: Rows.
        nonfinite: Find rows with NaN/Inf.
        duplicates: Find exact repeats of an earlier row.
        outliers: Robust z-score cut-off (``None``: skip); the scale is fitted on the
            finite rows unless ``scale`` is given.
        scale: A fitted :class:`RobustScale` (e.g. from the training split).
        mode: ``"drop"`` returns only clean rows; ``"flag"`` returns all rows.

    Returns:
        ``(rows, masks, report)``: ``rows`` as float tensor; ``masks`` maps each reason to
        an ``[N]`` bool array (rows found for that reason, first reason wins).
    """
    if mode not in ("drop", "flag"):
        raise ValueError(f"mode must be 'drop' or 'flag', got {mode!r}")
    rows = as_rows(x)
    n = len(rows)
    left = np.ones(n, bool)
    masks: dict[str, np.ndarray] = {}
    if nonfinite:
        masks["nonfinite"] = nonfinite_rows(rows)
        left &= ~masks["nonfinite"]
    if duplicates:
        d = np.zeros(n, bool)
        d[left] = duplicate_rows(rows[left])
        masks["duplicate"] = d
        left &= ~d
    if outliers is not None:
        o = np.zeros(n, bool)
        if left.any():
            sc = scale or RobustScale.fit(rows[left])
            o[left] = outlier_rows(rows[left], outliers, sc)
        masks["outlier"] = o
        left &= ~o
    report = CleaningReport(records=n, kept=int(left.sum()) if mode == "drop" else n, mode=mode)
    for k, m in masks.items():
        report.found[k] = int(m.sum())
    out = rows[left] if mode == "drop" else rows
    return torch.from_numpy(np.ascontiguousarray(out)), masks, report


class RecordCleaner:
    """Record-at-a-time cleaning with counts, for ``prepare`` loops.

    Args:
        nonfinite: Reject records whose features hold NaN/Inf.
        duplicates: Reject exact repeats (by a 16-byte blake2b digest of the features, or of
            ``content`` when given; memory: one digest per distinct record).
        outliers: A fitted :class:`RobustScale`; records with any ``|z| > threshold`` are
            rejected. ``None``: no outlier check.
        threshold: Robust z-score cut-off.
        max_outlier_fraction: A record is an outlier when more than this fraction of its
            rows exceed the threshold (0: any row).
        mode: ``"drop"`` (``keep`` returns False for bad records) or ``"flag"`` (``keep``
            always returns True; use :meth:`check` to get the reason and store a flag).
        feature_dim: Dimension of the feature array holding the features.
    """

    def __init__(self, *, nonfinite: bool = True, duplicates: bool = True,
                 outliers: RobustScale | None = None, threshold: float = 3.5,
                 max_outlier_fraction: float = 0.0, mode: str = "drop",
                 feature_dim: int = -1) -> None:
        if mode not in ("drop", "flag"):
            raise ValueError(f"mode must be 'drop' or 'flag', got {mode!r}")
        self.nonfinite, self.duplicates = nonfinite, duplicates
        self.outliers, self.threshold = outliers, float(threshold)
        self.max_outlier_fraction = float(max_outlier_fraction)
        self.feature_dim = feature_dim
        self.report = CleaningReport(mode=mode)
        self._seen: set[bytes] = set()

    def check(self, features: ArrayLike, content: bytes | None = None) -> str | None:
        """The reason to reject this record (``"nonfinite"``, ``"duplicate"``,
        ``"outlier"``) or ``None``; counts it in :attr:`report`."""
        rows = as_rows(features, self.feature_dim)
        reason = None
        if self.nonfinite and not np.isfinite(rows).all():
            reason = "nonfinite"
        if reason is None and self.duplicates:
            raw = content if content is not None else np.ascontiguousarray(rows + 0.0).tobytes()
            digest = hashlib.blake2b(raw, digest_size=16).digest()
            if digest in self._seen:
                reason = "duplicate"
            else:
                self._seen.add(digest)
        if reason is None and self.outliers is not None and len(rows):
            z = np.nan_to_num(np.abs(self.outliers.zscore(rows)), nan=0.0)
            frac = float((z.max(1) > self.threshold).mean())
            if frac > self.max_outlier_fraction:
                reason = "outlier"
        self.report.records += 1
        if reason is not None:
            self.report.found[reason] += 1
        if reason is None or self.report.mode == "flag":
            self.report.kept += 1
        return reason

    def keep(self, features: ArrayLike, content: bytes | None = None) -> bool:
        """True if the record should be written (always true in ``"flag"`` mode)."""
        reason = self.check(features, content)
        return reason is None or self.report.mode == "flag"

    def run(self, items: Iterable[ArrayLike]) -> list[bool]:
        """:meth:`keep` over many feature arrays."""
        return [self.keep(x) for x in items]
