"""Spectrogram pictures: input vs output log-mel, one PNG per synthesis/transfer."""

from __future__ import annotations

from pathlib import Path

import torch

from .features import FeatureSpec, log_mel

__all__ = ["save_spectrogram_pair"]


def save_spectrogram_pair(path: Path, inputs: torch.Tensor, output: torch.Tensor,
                          spec: FeatureSpec, titles: tuple[str, str]) -> Path:
    """Write a two-panel PNG of the log-mel spectrograms of ``inputs`` and ``output`` ([N])."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, constrained_layout=True)
    for ax, wave, title in zip(axes, (inputs, output), titles):
        mel = log_mel(wave.detach().float().cpu(), spec).numpy()
        seconds = mel.shape[-1] / spec.frame_rate
        im = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                       extent=(0.0, seconds, 0, spec.n_mels), vmin=mel.max() - 12)
        ax.set_title(title)
        ax.set_ylabel("mel band")
        fig.colorbar(im, ax=ax, label="log power")
    axes[-1].set_xlabel("seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
