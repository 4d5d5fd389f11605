"""PCA and whitening fit on a bounded sample, applied as an ``nn.Module``.

The fit needs only a sample of rows (:func:`sample_rows` draws a bounded,
deterministic one from the shards), so it works on data larger than memory.
Two solvers:

* ``"exact"`` — eigen-decomposition of the ``F x F`` covariance in float64
  (same answer as an SVD; cheap while F is a few thousand);
* ``"lowrank"`` — ``torch.pca_lowrank`` (randomised, ``niter`` power iterations),
  for many features and a few components.

Example::

    from torchsuite.core.data.preprocess import fit_pca, sample_rows

    rows = sample_rows("data/drives", "train", key="sensors", max_rows=50_000)
    pca, report = fit_pca(rows, k=8, whiten=True)
    print(report)                     # explained variance per component
    z = pca(x)                        # [..., F] -> [..., 8]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import DataError
from .._manifest import read_manifest
from .._order import EpochOrder
from ..shards import ShardReader
from .stats import ArrayLike, as_rows

__all__ = ["PCAReport", "PCATransform", "fit_pca", "sample_rows"]


@dataclass(frozen=True)
class PCAReport:
    """How much of the variance the kept components explain.

    Attributes:
        explained_variance: Variance along each kept component (unbiased, ``[k]``).
        explained_variance_ratio: Its share of the total variance.
        total_variance: Sum of the per-feature variances of the sample.
        n_samples: Rows the fit saw.
        method: Solver used.
    """

    explained_variance: list[float]
    explained_variance_ratio: list[float]
    total_variance: float
    n_samples: int
    method: str

    @property
    def cumulative(self) -> list[float]:
        """Cumulative explained-variance ratio."""
        return np.cumsum(self.explained_variance_ratio).tolist()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for a prepare report)."""
        return {"explained_variance": self.explained_variance,
                "explained_variance_ratio": self.explained_variance_ratio,
                "cumulative": self.cumulative, "total_variance": self.total_variance,
                "n_samples": self.n_samples, "method": self.method}

    def __str__(self) -> str:
        lines = [f"PCA ({self.method}, {self.n_samples} rows, total variance "
                 f"{self.total_variance:.4g})", "  comp    variance   ratio  cumulative"]
        for i, (v, r, c) in enumerate(zip(self.explained_variance,
                                          self.explained_variance_ratio, self.cumulative)):
            lines.append(f"  {i:4d} {v:11.4g} {r:7.3f} {c:11.3f}")
        return "\n".join(lines)


class PCATransform(nn.Module):
    """Project ``[..., F]`` onto ``k`` principal components (optionally whitened).

    ``forward``: ``z = ((x - mean) @ components) * scale``; ``inverse`` maps back to
    feature space (the rank-``k`` reconstruction).

    Args:
        mean: ``[F]`` centre.
        components: ``[F, k]`` orthonormal columns, by decreasing variance.
        scale: ``[k]`` multipliers (``1/sqrt(variance + eps)`` when whitening, else ones).
    """

    mean: torch.Tensor
    components: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: torch.Tensor, components: torch.Tensor,
                 scale: torch.Tensor | None = None) -> None:
        super().__init__()
        if components.ndim != 2 or mean.shape != (components.shape[0],):
            raise ValueError("need mean [F] and components [F, k]")
        k = components.shape[1]
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("components", components.float().clone())
        self.register_buffer("scale", (scale if scale is not None else torch.ones(k))
                             .float().clone())

    @property
    def k(self) -> int:
        """Components kept."""
        return int(self.components.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., F] -> [..., k]``."""
        return ((x.float() - self.mean) @ self.components) * self.scale

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``[..., k] -> [..., F]`` (reconstruction from the kept components)."""
        return (z.float() / self.scale) @ self.components.T + self.mean


def fit_pca(
    x: ArrayLike,
    k: int,
    *,
    whiten: bool = False,
    method: str = "auto",
    niter: int = 6,
    oversample: int = 10,
    seed: int = 0,
    eps: float = 1e-8,
) -> tuple[PCATransform, PCAReport]:
    """Fit PCA (optionally whitening) on a sample of rows.

    Args:
        x: ``[N, F]`` rows (NaN/Inf rows must be removed first; see
            :func:`~torchsuite.core.data.preprocess.clean_rows`).
        k: Components to keep (``1 <= k <= min(N, F)``).
        whiten: Scale each component to unit variance.
        method: ``"exact"``, ``"lowrank"`` or ``"auto"`` (exact up to 2048 features).
        niter: Power iterations of the low-rank solver (more: closer to exact).
        oversample: Extra dimensions the low-rank solver uses beyond ``k``.
        seed: Seed of the low-rank solver's random projection.
        eps: Added to variances before whitening.

    Returns:
        ``(transform, report)``.
    """
    rows = torch.from_numpy(np.ascontiguousarray(as_rows(x)))  # [N, F] float64
    n, f = rows.shape
    if not 1 <= k <= min(n, f):
        raise ValueError(f"k must be in [1, min(N, F)] = [1, {min(n, f)}], got {k}")
    if n < 2:
        raise ValueError("PCA needs at least 2 rows")
    if not torch.isfinite(rows).all():
        raise DataError("PCA sample contains NaN/Inf; drop those rows first (clean_rows).")
    if method == "auto":
        method = "exact" if f <= 2048 else "lowrank"
    mean = rows.mean(0)
    centred = rows - mean
    total = float(centred.pow(2).sum() / (n - 1))
    if method == "exact":
        cov = centred.T @ centred / (n - 1)  # [F, F]
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        var = evals.flip(0)[:k].clamp_min(0)
        comps = evecs.flip(1)[:, :k]
    elif method == "lowrank":
        q = min(k + oversample, n, f)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            _, s, v = torch.pca_lowrank(centred, q=q, center=False, niter=niter)
        finally:
            torch.random.set_rng_state(state)
        var = (s[:k] ** 2) / (n - 1)
        comps = v[:, :k]
    else:
        raise ValueError(f"method must be 'auto', 'exact' or 'lowrank', got {method!r}")
    # Fix each component's sign (largest |loading| positive) so refits agree.
    idx = comps.abs().argmax(0)
    signs = torch.sign(comps[idx, torch.arange(k)])
    comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
    scale = 1.0 / torch.sqrt(var + eps) if whiten else None
    report = PCAReport(
        explained_variance=var.tolist(),
        explained_variance_ratio=(var / total if total > 0 else var * 0).tolist(),
        total_variance=total, n_samples=n, method=method,
    )
    return PCATransform(mean, comps, scale), report


def sample_rows(
    data_dir: str | Path,
    split: str = "train",
    key: str | Callable[[Any], ArrayLike] = "x",
    *,
    max_rows: int = 100_000,
    feature_dim: int = -1,
    seed: int = 0,
    drop_nonfinite: bool = True,
) -> torch.Tensor:
    """A bounded, deterministic sample of feature rows from a split.

    Records are visited in a seeded random order (one ``pread`` each, the order computed
    on the fly) and their rows collected until ``max_rows``; memory is bounded by
    ``max_rows`` rows, whatever the data set size.

    Args:
        data_dir: Data set directory.
        split: Split to sample.
        key: Record field with the features, or a function ``record -> array``.
        max_rows: Upper bound on the rows returned.
        feature_dim: Dimension holding the features.
        seed: Sampling seed.
        drop_nonfinite: Skip rows containing NaN/Inf.

    Returns:
        ``[N, F]`` float64, ``N <= max_rows``.
    """
    from .stats import _extractor

    reader = ShardReader(read_manifest(data_dir), split)
    get = _extractor(key)
    # A keyed permutation computed window by window: no array of all record ids.
    order = EpochOrder(len(reader), seed, 0, block_size=1, window=256)
    parts: list[np.ndarray] = []
    have = 0
    for w in range(order.num_windows):
        for rec in reader.read_many(order.window_records(w)):
            r = as_rows(get(rec), feature_dim)
            if drop_nonfinite:
                r = r[np.isfinite(r).all(1)]
            parts.append(r[: max_rows - have])
            have += len(parts[-1])
            if have >= max_rows:
                break
        if have >= max_rows:
            break
    if not parts:
        raise DataError(f"Split {split!r} of {data_dir} gave no rows to sample.")
    return torch.from_numpy(np.concatenate(parts))
