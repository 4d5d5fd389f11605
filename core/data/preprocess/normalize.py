"""Feature normalisation as an ``nn.Module``, so export and serving apply the same transform.

Putting the statistics in the model (as buffers) instead of the data loader means a
checkpoint, a ``torch.export`` program or an ONNX file carries them: a server
feeds raw features and gets the same numbers the model saw in training.

Example::

    from torchsuite.core.data.preprocess import Normalize, load_stats

    norm = Normalize.from_stats(load_stats("data/drives", "sensors"))  # [..., F] -> [..., F]
    model = torch.nn.Sequential(norm, planner)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .stats import FeatureStats

__all__ = ["Normalize"]


class Normalize(nn.Module):
    """``(x - mean) / std`` per feature, optionally clipped; statistics held as buffers.

    Args:
        mean: Per-feature mean ``[F]``.
        std: Per-feature standard deviation ``[F]``; values below ``eps`` (constant
            features) are replaced by 1 so they map to 0 instead of blowing up.
        feature_dim: Dimension of the input holding the features; negative, so the module
            works with and without a batch dimension (``-1``: ``[..., F]``; ``-2``:
            ``[..., F, T]`` spectrograms).
        eps: Smallest standard deviation used as is.
        clip: If given, outputs are clamped to ``[-clip, clip]`` (robust to outliers at
            serving time).
    """

    mean: torch.Tensor
    inv_std: torch.Tensor

    def __init__(self, mean: torch.Tensor | np.ndarray, std: torch.Tensor | np.ndarray, *,
                 feature_dim: int = -1, eps: float = 1e-6, clip: float | None = None) -> None:
        super().__init__()
        if feature_dim >= 0:
            raise ValueError("feature_dim must be negative (counted from the end), e.g. -1")
        mean_t = torch.as_tensor(np.asarray(mean, np.float64)).float()
        std_t = torch.as_tensor(np.asarray(std, np.float64)).float()
        if mean_t.ndim != 1 or mean_t.shape != std_t.shape:
            raise ValueError(f"mean and std must be 1-D of equal size, got "
                             f"{tuple(mean_t.shape)} and {tuple(std_t.shape)}")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()):
            raise ValueError("mean/std contain NaN or Inf (a feature with no finite value?)")
        std_t = torch.where(std_t < eps, torch.ones_like(std_t), std_t)
        shape = [-1] + [1] * (-feature_dim - 1)  # broadcast along feature_dim
        self.register_buffer("mean", mean_t.reshape(shape))
        self.register_buffer("inv_std", (1.0 / std_t).reshape(shape))
        self.feature_dim = int(feature_dim)
        self.clip = clip

    @classmethod
    def from_stats(cls, stats: FeatureStats, *, eps: float = 1e-6,
                   clip: float | None = None) -> Normalize:
        """Build from :class:`FeatureStats` (uses its ``feature_dim``; a feature seen fewer
        than twice gets mean 0 / std 1, i.e. passes through)."""
        if stats.num_features is None:
            raise ValueError("the statistics are empty")
        mean = np.where(np.isfinite(stats.mean), stats.mean, 0.0)
        std = np.where(np.isfinite(stats.std), stats.std, 1.0)
        fd = stats.feature_dim if stats.feature_dim < 0 else -1
        return cls(mean, std, feature_dim=fd, eps=eps, clip=clip)

    @property
    def num_features(self) -> int:
        """Features normalised."""
        return int(self.mean.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (features along ``feature_dim``); output dtype follows ``x``
        when it is floating, else float32."""
        dtype = x.dtype if x.is_floating_point() else torch.float32
        y = (x.to(dtype) - self.mean.to(dtype)) * self.inv_std.to(dtype)
        if self.clip is not None:
            y = y.clamp(-self.clip, self.clip)
        return y

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`forward` (exact unless clipping was active)."""
        return y / self.inv_std.to(y.dtype) + self.mean.to(y.dtype)

    def extra_repr(self) -> str:
        return f"features={self.num_features}, feature_dim={self.feature_dim}, clip={self.clip}"
