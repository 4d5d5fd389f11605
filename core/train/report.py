"""Reading finished runs: the best dev metric of each run and loss/metric curve plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import load_toml
from ..errors import SuiteError
from .logs import read_metrics

__all__ = ["RunSummary", "plot_run", "summarize_run"]


@dataclass
class RunSummary:
    """One row of ``suite runs``."""

    task: str
    name: str
    path: Path
    steps: int
    monitor: str
    best: float | None
    best_step: int | None


def _curves(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return read_metrics(path) if path.is_file() else []


def summarize_run(run_dir: Path) -> RunSummary:
    """Steps trained and the best value of the monitored dev metric (from metrics.jsonl)."""
    task_file = run_dir / "task"
    task = task_file.read_text().strip() if task_file.is_file() else run_dir.parent.name
    train = load_toml(run_dir / "config.toml").get("train", {})
    key = train.get("monitor") or "loss"
    key = key if key.startswith("dev.") else f"dev.{key}"
    mode = train.get("monitor_mode", "min")
    records = _curves(run_dir)
    steps = max((int(r.get("step", 0)) for r in records), default=0)
    best: float | None = None
    best_step: int | None = None
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and (
            best is None or (v < best if mode == "min" else v > best)
        ):
            best, best_step = float(v), int(r["step"])
    return RunSummary(task, run_dir.name, run_dir, steps, key, best, best_step)


def plot_run(run_dir: Path, out: Path | None = None) -> Path:
    """Write a PNG with the training loss and every dev metric against steps.

    Returns:
        The PNG path (``<run>/curves.png`` unless ``out`` is given).
    """
    records = _curves(run_dir)
    train = [(r["step"], r["train.loss"]) for r in records
             if isinstance(r.get("train.loss"), (int, float))]
    dev_keys = sorted({k for r in records for k in r if k.startswith("dev.")})
    if not train and not dev_keys:
        raise SuiteError(
            f"run '{run_dir}' has no training records in metrics.jsonl yet; nothing to plot."
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SuiteError(
            "`suite plot` needs matplotlib: pip install matplotlib (or torchsuite[all])."
        ) from None
    panels = 1 + len(dev_keys)
    fig, axes = plt.subplots(panels, 1, figsize=(7, 2.6 * panels), sharex=True, squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train, strict=True), label="train.loss")
    if "dev.loss" in dev_keys:
        dev = [(r["step"], r["dev.loss"]) for r in records if "dev.loss" in r]
        ax.plot(*zip(*dev, strict=True), marker="o", label="dev.loss")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    for i, key in enumerate(dev_keys, start=1):
        pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        a = axes[i][0]
        a.plot(*zip(*pts, strict=True), marker="o", color="C1")
        a.set_ylabel(key)
        a.grid(alpha=0.3)
    axes[-1][0].set_xlabel("step")
    fig.suptitle(f"{run_dir.parent.name}/{run_dir.name}")
    fig.tight_layout()
    out = out or run_dir / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
