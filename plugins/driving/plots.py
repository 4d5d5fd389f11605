"""Evaluation plots for ``suite drive evaluate`` (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_evaluation"]

PANELS = (
    ("driving_score", "driving score (higher is better)"),
    ("collisions_per_km", "collisions per km"),
    ("route_completion", "route completion"),
    ("jerk_rms", "RMS jerk (m/s³)"),
    ("lat_acc_max", "max |lateral accel| (m/s²)"),
    ("headway_mean", "mean time headway (s)"),
)


def plot_evaluation(rows: dict[str, dict[str, Any]], scores: dict[str, list[float]],
                    out_dir: Path, name: str = "drive_eval") -> list[Path]:
    """Write the metric bars per policy and the per-scenario score comparison.

    Args:
        rows: Policy name -> summary metrics (the table).
        scores: Policy name -> driving score of each scenario (same scenario order).
        out_dir: Usually the run's ``samples/``.
        name: File name stem: ``{name}_metrics.png``, ``{name}_scores.png``.

    Returns:
        The PNG files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    colors = [f"C{i}" for i in range(len(names))]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (key, title) in zip(axes.ravel(), PANELS):
        vals = [float(rows[n][key]) for n in names]
        vals = [v if np.isfinite(v) else 0.0 for v in vals]
        ax.bar(range(len(names)), vals, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"closed-loop evaluation ({rows[names[0]]['scenarios']} scenarios)")
    fig.tight_layout()
    bars = out_dir / f"{name}_metrics.png"
    fig.savefig(bars, dpi=100)
    plt.close(fig)
    written = [bars]
    if "expert" in scores and len(scores) > 1:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        ref = np.asarray(scores["expert"])
        for i, n in enumerate(names):
            if n != "expert" and n in scores and "-" not in n:
                ax.scatter(ref, scores[n], s=14, color=colors[i], label=n, alpha=0.8)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set_xlabel("expert driving score")
        ax.set_ylabel("policy driving score")
        ax.set_title("per-scenario driving score")
        ax.legend(fontsize=8)
        fig.tight_layout()
        scatter = out_dir / f"{name}_scores.png"
        fig.savefig(scatter, dpi=100)
        plt.close(fig)
        written.append(scatter)
    return written
