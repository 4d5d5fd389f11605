"""Class / bucket balancing: a deterministic, resumable weighted stream order and loss weights.

Two ways to correct an imbalanced class mix (maneuver classes, genres, length
buckets):

* **Sampling** — :class:`SamplingPlan` given to :class:`~torchsuite.core.data.ShardStream`
  (``ShardStream(..., sampling=plan)``). Each epoch has ``epoch_size`` positions; every
  window of ``shuffle_buffer`` positions holds each class in its target share
  (rounded with a carried remainder, so the mix is exact over the epoch to within one
  record per class), shuffled. The ``k``-th draw of class ``c`` in an epoch is member
  ``perm_(c, k // n_c)(k % n_c)`` of that class, with a fresh keyed permutation per pass
  over the class: rare classes repeat as evenly as possible (every record once before
  any twice), frequent ones are sub-sampled without repeats. Position -> record is a
  pure function of (labels, target, seed, epoch), so the stream stays exactly
  resumable from ``(epoch, consumed)`` and splits over ranks x workers as usual.
* **Loss re-weighting** — :func:`class_loss_weights` gives per-class weights for
  ``F.cross_entropy(weight=...)`` that make each class contribute its target share.

Both report the class mix before and after (:class:`ClassMixReport`).

Example::

    from torchsuite.core.data import ShardStream
    from torchsuite.core.data.preprocess import SamplingPlan, read_labels

    labels = read_labels("data/drives", "train", key="maneuver")
    plan = SamplingPlan(labels, target="balanced")
    print(plan.report())
    stream = ShardStream("data/drives", "train", sampling=plan, seed=0)
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, DataError
from .._manifest import read_manifest
from .._order import feistel_permute
from ..shards import ShardReader, _write_synced
from ._store import get_entry, put_entry

__all__ = [
    "BalancedOrder",
    "ClassMixReport",
    "SamplingPlan",
    "bucketize",
    "class_loss_weights",
    "class_mix",
    "load_labels",
    "read_labels",
    "save_labels",
]

Target = str | Mapping[Any, float]


@dataclass(frozen=True)
class ClassMixReport:
    """The class mix before and after balancing.

    Attributes:
        classes: Class labels, in index order.
        counts: Records per class in the data.
        before: Share of each class in the data.
        after: Share each class gets after balancing (sampling: of the served positions;
            loss weights: of the total loss weight).
        how: ``"sampling"``, ``"loss weights"`` or ``"measured"``.
    """

    classes: list[Any]
    counts: list[int]
    before: list[float]
    after: list[float]
    how: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for a prepare or training report)."""
        return {"how": self.how, "classes": [str(c) for c in self.classes],
                "counts": self.counts, "before": self.before, "after": self.after}

    def __str__(self) -> str:
        lines = [f"class mix ({self.how}):", f"  {'class':>14} {'records':>9} {'before':>8} "
                 f"{'after':>8}"]
        for c, n, b, a in zip(self.classes, self.counts, self.before, self.after):
            lines.append(f"  {str(c)[:14]:>14} {n:>9} {b:>8.3f} {a:>8.3f}")
        return "\n".join(lines)


def _encode_labels(labels: Sequence[Any] | np.ndarray,
                   classes: Sequence[Any] | None) -> tuple[list[Any], np.ndarray]:
    """``(classes, codes)``: codes index into classes."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D (one per record), got shape {arr.shape}")
    found, codes = np.unique(arr, return_inverse=True)
    if classes is None:
        return found.tolist(), codes.astype(np.int64)
    classes = list(classes)
    pos = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in found.tolist() if c not in pos]
    if unknown:
        raise ConfigError(f"labels {unknown[:5]} are not among the given classes {classes[:10]}.")
    remap = np.array([pos[c] for c in found.tolist()], np.int64)
    return classes, remap[codes]


def _target_mix(classes: list[Any], counts: np.ndarray, target: Target,
                power: float) -> np.ndarray:
    p = counts / max(int(counts.sum()), 1)
    present = counts > 0
    if isinstance(target, str):
        if target == "natural":
            return p.astype(np.float64)
        if target != "balanced":
            raise ConfigError(f"target must be 'balanced', 'natural' or a mapping "
                              f"class -> share, got {target!r}.")
        if not 0.0 <= power <= 1.0:
            raise ConfigError(f"power must be in [0, 1] (0: natural mix, 1: uniform), "
                              f"got {power}.")
        t = np.where(present, np.power(np.maximum(counts, 1).astype(np.float64), 1 - power),
                     0.0)
        return t / t.sum()
    unknown = [k for k in target if k not in classes]
    if unknown:
        raise ConfigError(f"target mix names unknown class(es) {unknown}; the classes are "
                          f"{classes}.")
    t = np.array([float(target.get(c, 0.0)) for c in classes])
    if (t < 0).any() or not np.isfinite(t).all() or t.sum() <= 0:
        raise ConfigError(f"target mix must be finite, >= 0 and not all zero: {dict(target)}")
    empty = [c for c, tc, n in zip(classes, t, counts) if tc > 0 and n == 0]
    if empty:
        raise DataError(f"target mix asks for class(es) {empty}, which have no records. "
                        "Drop them from the target or add data.")
    return t / t.sum()


def class_mix(labels: Sequence[Any] | np.ndarray,
              classes: Sequence[Any] | None = None) -> dict[Any, float]:
    """Share of each class in ``labels`` (e.g. the labels a stream served)."""
    cls, codes = _encode_labels(labels, classes)
    counts = np.bincount(codes, minlength=len(cls))
    return {c: float(n) / max(len(codes), 1) for c, n in zip(cls, counts)}


def bucketize(values: Sequence[float] | np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bucket ids for per-bucket balancing: ``i`` where ``edges[i-1] <= v < edges[i]``
    (``0`` below the first edge, ``len(edges)`` from the last one)."""
    return np.digitize(np.asarray(values), np.asarray(edges), right=False).astype(np.int64)


def class_loss_weights(
    labels: Sequence[Any] | np.ndarray,
    target: Target = "balanced",
    *,
    power: float = 1.0,
    classes: Sequence[Any] | None = None,
) -> tuple[torch.Tensor, ClassMixReport]:
    """Per-class loss weights that give each class its target share of the loss.

    ``w_c = t_c / p_c``, scaled so the mean weight over the data is 1 (the loss keeps
    its scale). Use as ``F.cross_entropy(logits, y, weight=w)`` with ``y`` the class
    index in ``classes`` order. Classes without records get weight 1 (never used).

    Args:
        labels: Training labels, one per record.
        target: ``"balanced"``, ``"natural"`` or a mapping class -> share.
        power: For ``"balanced"``: 1 uniform, 0 natural, in between ``n_c ** (1 - power)``.
        classes: Class order of the weight vector (default: sorted distinct labels); pass
            ``range(num_classes)`` so indices match the model's outputs.

    Returns:
        ``(weights [K] float32, report)``.
    """
    cls, codes = _encode_labels(labels, classes)
    counts = np.bincount(codes, minlength=len(cls))
    t = _target_mix(cls, counts, target, power)
    p = counts / max(int(counts.sum()), 1)
    w = np.where(counts > 0, t / np.where(p > 0, p, 1.0), 1.0)
    w = w / float((p * w).sum())
    after = p * w
    report = ClassMixReport(cls, counts.tolist(), p.tolist(), (after / after.sum()).tolist(),
                            "loss weights")
    return torch.tensor(w, dtype=torch.float32), report


class SamplingPlan:
    """Target class mix for :class:`~torchsuite.core.data.ShardStream` (``sampling=``).

    Args:
        labels: One label per record of the split, in split order (ints or strings;
            bucket ids for per-bucket balancing, see :func:`bucketize`).
        target: ``"balanced"`` (equal shares), ``"natural"`` (the data's own mix) or a
            mapping class -> share (normalised).
        power: For ``"balanced"``: 1 uniform, 0 natural, 0.5 square-root smoothing.
        epoch_size: Positions per epoch (default: the number of records).
        classes: Optional fixed class order.

    Memory: one int64 per record (the record ids grouped by class).
    """

    def __init__(self, labels: Sequence[Any] | np.ndarray, target: Target = "balanced", *,
                 power: float = 1.0, epoch_size: int | None = None,
                 classes: Sequence[Any] | None = None) -> None:
        self.classes, codes = _encode_labels(labels, classes)
        self.num_records = len(codes)
        if self.num_records == 0:
            raise DataError("SamplingPlan needs at least one label.")
        self.counts = np.bincount(codes, minlength=len(self.classes)).astype(np.int64)
        self.mix_before = self.counts / self.num_records
        self.mix_after = _target_mix(self.classes, self.counts, target, power)
        self.epoch_size = int(epoch_size if epoch_size is not None else self.num_records)
        if self.epoch_size < 1:
            raise ConfigError(f"epoch_size must be >= 1, got {epoch_size}")
        order = np.argsort(codes, kind="stable")
        cuts = np.cumsum(self.counts)[:-1]
        self.ids: list[np.ndarray] = np.split(order.astype(np.int64), cuts)
        h = hashlib.blake2b(digest_size=12)
        h.update(np.ascontiguousarray(codes).tobytes())
        h.update(repr((self.classes, np.round(self.mix_after, 12).tolist(),
                       self.epoch_size)).encode())
        self._fingerprint = h.hexdigest()
        self._tables: dict[int, np.ndarray] = {}

    def fingerprint(self) -> str:
        """Stable id of (labels, classes, target mix, epoch size), stored in stream states."""
        return self._fingerprint

    def report(self) -> ClassMixReport:
        """Class mix of the data vs the mix the stream serves."""
        return ClassMixReport(self.classes, self.counts.tolist(), self.mix_before.tolist(),
                              self.mix_after.tolist(), "sampling")

    def expected_repeats(self) -> dict[Any, float]:
        """Average times each record of a class is served per epoch (< 1: sub-sampled)."""
        return {c: (self.epoch_size * t / n if n else 0.0)
                for c, t, n in zip(self.classes, self.mix_after, self.counts)}

    def quota_table(self, window: int) -> np.ndarray:
        """``[num_windows + 1, K]`` cumulative class counts at each window start.

        Each window's counts sum to its size (``window``; the last one may be shorter)
        and follow the target mix, the rounding remainder carried to the next window (so
        the epoch total is within one of ``epoch_size * share`` per class). Depends only
        on the plan, not on the seed.
        """
        if window in self._tables:
            return self._tables[window]
        nw = -(-self.epoch_size // window)
        t = self.mix_after
        table = np.zeros((nw + 1, len(t)), np.int64)
        carry = np.zeros(len(t))
        for w in range(nw):
            size = min(window, self.epoch_size - w * window)  # the last window is short
            ideal = size * t + carry
            q = np.floor(ideal).clip(0).astype(np.int64)
            short = size - int(q.sum())
            rem = ideal - q
            if short > 0:  # largest remainders first, only classes that are in the target
                cand = np.argsort(-np.where(t > 0, rem, -np.inf), kind="stable")[:short]
                q[cand] += 1
            elif short < 0:
                cand = np.argsort(np.where(q > 0, rem, np.inf), kind="stable")[:-short]
                q[cand] -= 1
            carry = ideal - q
            table[w + 1] = table[w] + q
        self._tables[window] = table
        return table

    def order(self, seed: int, epoch: int, window: int) -> BalancedOrder:
        """The position -> record map of one epoch."""
        return BalancedOrder(self, seed, epoch, window)


class BalancedOrder:
    """Position -> record id for one epoch of a :class:`SamplingPlan` (window by window).

    Has the interface :class:`~torchsuite.core.data.ShardStream` needs: ``n`` (positions),
    ``window`` and ``window_records(w)``.
    """

    def __init__(self, plan: SamplingPlan, seed: int, epoch: int, window: int) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.plan = plan
        self.n = plan.epoch_size
        self.window = int(window)
        self.seed = int(seed) & (2**63 - 1)
        self.epoch = int(epoch)
        self.table = plan.quota_table(self.window)

    @property
    def num_windows(self) -> int:
        """Windows in the epoch."""
        return -(-self.n // self.window)

    def _draw(self, c: int, ks: np.ndarray) -> np.ndarray:
        """Record ids of the ``ks``-th draws of class ``c`` (a fresh permutation per pass)."""
        ids = self.plan.ids[c]
        n_c = len(ids)
        cycles, r = np.divmod(ks, n_c)
        out = np.empty(len(ks), np.int64)
        for cyc in np.unique(cycles):
            sel = cycles == cyc
            keys = np.random.SeedSequence(
                [self.seed, self.epoch, c, int(cyc), 0xBA1A]).generate_state(4, np.uint64)
            out[sel] = ids[feistel_permute(r[sel], n_c, keys)]
        return out

    def window_records(self, w: int) -> np.ndarray:
        """Record ids at positions ``[w * window, min((w + 1) * window, n))`` (int64)."""
        lo = w * self.window
        hi = min(lo + self.window, self.n)
        if lo >= hi:
            return np.zeros(0, np.int64)
        q = self.table[w + 1] - self.table[w]
        rng = np.random.default_rng([self.seed, self.epoch, w, 0xBA1B])
        cls = rng.permutation(np.repeat(np.arange(len(q)), q))  # hi - lo classes
        out = np.empty(hi - lo, np.int64)
        for c in np.unique(cls):
            pos = np.flatnonzero(cls == c)
            out[pos] = self._draw(int(c), self.table[w, c] + np.arange(len(pos)))
        return out


def read_labels(data_dir: str | Path, split: str = "train",
                key: str | Callable[[Any], Any] = "label") -> np.ndarray:
    """One label per record of a split, in split order (reads every record once).

    Args:
        data_dir: Data set directory.
        split: Split name.
        key: Record field holding the label (a scalar or str), or ``record -> label``.

    Raises:
        DataError: A record lacks the field (naming its position).
    """
    reader = ShardReader(read_manifest(data_dir), split)
    out: list[Any] = []
    for lo in range(0, len(reader), 512):
        hi = min(lo + 512, len(reader))
        for j, raw in enumerate(reader.read_raw_range(lo, hi)):
            rec = reader.decode(raw, lo + j)
            try:
                lab = key(rec) if callable(key) else rec[key]
            except (KeyError, TypeError) as e:
                raise DataError(f"Record {lo + j} of split {split!r} in {data_dir} has no "
                                f"label field {key!r}.") from e
            if isinstance(lab, torch.Tensor | np.ndarray):
                lab = lab.item()
            out.append(lab)
    return np.asarray(out)


def _labels_file(split: str, name: str) -> str:
    return f"labels-{split}-{name}.npy"


def save_labels(data_dir: str | Path, split: str, name: str,
                labels: Sequence[Any] | np.ndarray) -> Path:
    """Save one label per record of ``split`` next to the manifest, so training can build a
    :class:`SamplingPlan` without decoding every record (:func:`load_labels`).

    The ``.npy`` file is written atomically and its blake2b, record count and split are
    recorded in the manifest's ``"preprocess"`` section.

    Returns:
        The label file.
    """
    m = read_manifest(data_dir)
    arr = np.asarray(labels)
    n = m.split(split).num_records
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"save_labels: split {split!r} of {m.path} has {n} records, got labels "
                        f"of shape {arr.shape}. Pass one label per record, in split order.")
    if arr.dtype.hasobject:
        raise DataError("save_labels: labels must be numbers or strings (not objects).")
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"invalid label name {name!r}")
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    data = buf.getvalue()
    path = m.root / _labels_file(split, name)
    _write_synced(path, data)
    put_entry(data_dir, f"labels/{split}/{name}", {
        "kind": "labels", "split": split, "file": path.name, "records": n,
        "blake2b": hashlib.blake2b(data, digest_size=32).hexdigest()})
    return path


def load_labels(data_dir: str | Path, split: str, name: str) -> np.ndarray:
    """Labels saved by :func:`save_labels`, checked against the manifest.

    Raises:
        DataError: None saved under that name, or the file is missing, damaged or from
            another version of the data set.
    """
    m, entry = get_entry(
        data_dir, f"labels/{split}/{name}", "labels",
        f"Save them with save_labels(data_dir, {split!r}, {name!r}, labels) (labels from "
        f"read_labels(data_dir, {split!r}, key=...)), or re-run prepare.")
    path = m.root / entry["file"]
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise DataError(f"Label file {path} listed in {m.path} is missing; save the labels "
                        "again (save_labels) or re-run prepare.") from e
    if hashlib.blake2b(data, digest_size=32).hexdigest() != entry["blake2b"]:
        raise DataError(f"Label file {path} does not match {m.path} (checksum mismatch); save "
                        "the labels again (save_labels) or re-run prepare.")
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if len(arr) != m.split(split).num_records:
        raise DataError(f"Label file {path} has {len(arr)} labels, split {split!r} has "
                        f"{m.split(split).num_records} records; save the labels again.")
    return arr
