"""Multi-resolution STFT loss and the spectral distances of the quality report."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MultiResolutionSTFTLoss", "logmel_l1"]


class MultiResolutionSTFTLoss(nn.Module):
    """Mean over FFT sizes of (spectral convergence + L1 of log magnitudes).

    Several resolutions keep the model honest both in time (small FFTs catch
    attacks) and in frequency (large FFTs resolve harmonics); no single STFT does both.

    Args:
        fft_sizes: FFT sizes; hop is a quarter of each.
        eps: Floor inside the log.
    """

    def __init__(self, fft_sizes: Sequence[int] = (1024, 512, 256, 128), eps: float = 1e-5) -> None:
        super().__init__()
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.eps = eps
        for n in self.fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def _mag(self, x: torch.Tensor, n: int) -> torch.Tensor:
        window = getattr(self, f"window_{n}")
        return torch.stft(x, n, n // 4, window=window, return_complex=True).abs()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: [B, N] -> scalar loss."""
        total = pred.new_zeros(())
        for n in self.fft_sizes:
            p, t = self._mag(pred, n), self._mag(target, n)  # [B, F, frames]
            norm_t = torch.linalg.norm(t, dim=(-2, -1)).clamp_min(self.eps)
            sc = torch.linalg.norm(t - p, dim=(-2, -1)) / norm_t
            log_l1 = (torch.log(p + self.eps) - torch.log(t + self.eps)).abs().mean(dim=(-2, -1))
            total = total + (sc + log_l1).mean()
        return total / len(self.fft_sizes)


def logmel_l1(pred_mel: torch.Tensor, target_mel: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two log-mel spectrograms ([..., n_mels, T])."""
    t = min(pred_mel.shape[-1], target_mel.shape[-1])
    return (pred_mel[..., :t] - target_mel[..., :t]).abs().mean()
