"""torchsuite.core.data.preprocess: feature statistics, normalisation, PCA, balancing, cleaning.

* :mod:`.stats` — :class:`FeatureStats` (Welford mean/variance, min/max, histograms;
  mergeable across shards, DataLoader workers and ranks), :func:`compute_stats` over a
  split's shards, :func:`save_stats` / :func:`load_stats` (kept in ``manifest.json``);
* :mod:`.normalize` — :class:`Normalize`, an ``nn.Module`` holding the statistics as
  buffers, so checkpoints, ``torch.export`` and serving apply the same transform;
* :mod:`.pca` — :func:`fit_pca` on a bounded :func:`sample_rows` sample, the
  :class:`PCATransform` module (optionally whitening) and a :class:`PCAReport`;
* :mod:`.balance` — :class:`SamplingPlan` for ``ShardStream(..., sampling=plan)``
  (deterministic, resumable class/bucket balancing), :func:`class_loss_weights`,
  :class:`ClassMixReport`, :func:`read_labels` / :func:`save_labels` / :func:`load_labels`,
  :func:`bucketize`, :func:`class_mix`;
* :mod:`.clean` — :func:`clean_rows`, :class:`RecordCleaner` (NaN/Inf, duplicates,
  robust z-score outliers, counted in a :class:`CleaningReport`).

Typical use in a task::

    # prepare(): after writing the shards
    stats = compute_stats(out_dir, "train", key="sensors")
    save_stats(out_dir, "sensors", stats)
    save_labels(out_dir, "train", "maneuver", read_labels(out_dir, "train", key="maneuver"))

    # build_model(): normalisation is the model's first layer
    model = nn.Sequential(Normalize.from_stats(load_stats(data_dir, "sensors")), net)

    # dataloader("train"): maneuver classes balanced in the stream
    plan = SamplingPlan(load_labels(data_dir, "train", "maneuver"), "balanced")
    stream = ShardStream(data_dir, "train", sampling=plan)
"""

from .balance import (
    BalancedOrder,
    ClassMixReport,
    SamplingPlan,
    bucketize,
    class_loss_weights,
    class_mix,
    load_labels,
    read_labels,
    save_labels,
)
from .clean import (
    CleaningReport,
    RecordCleaner,
    RobustScale,
    clean_rows,
    duplicate_rows,
    nonfinite_rows,
    outlier_rows,
    robust_zscore,
)
from .normalize import Normalize
from .pca import PCAReport, PCATransform, fit_pca, sample_rows
from .stats import FeatureStats, compute_stats, load_stats, save_stats

__all__ = [
    "BalancedOrder",
    "ClassMixReport",
    "CleaningReport",
    "FeatureStats",
    "Normalize",
    "PCAReport",
    "PCATransform",
    "RecordCleaner",
    "RobustScale",
    "SamplingPlan",
    "bucketize",
    "class_loss_weights",
    "class_mix",
    "clean_rows",
    "compute_stats",
    "duplicate_rows",
    "fit_pca",
    "load_labels",
    "load_stats",
    "nonfinite_rows",
    "outlier_rows",
    "read_labels",
    "robust_zscore",
    "sample_rows",
    "save_labels",
    "save_stats",
]
