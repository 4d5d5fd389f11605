"""Checkpoint averaging: the element-wise mean of the last N checkpoints' weights.

Averaging the final checkpoints of a Transformer run usually gains a little BLEU for
free (Vaswani et al. averaged the last 5). The result is a normal checkpoint file
(``checkpoints/averaged.pt``) that ``suite eval``/``translate --checkpoint`` read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torchsuite.core import SuiteError
from torchsuite.core.train import load_checkpoint
from torchsuite.core.train.checkpoint import atomic_save, step_checkpoints

__all__ = ["average_checkpoints", "average_run"]


def average_checkpoints(paths: Sequence[Path]) -> dict[str, torch.Tensor]:
    """Mean of the ``model`` states in ``paths`` (floating tensors; others from the last).

    Raises:
        SuiteError: No paths, or states with different keys or shapes.
    """
    if not paths:
        raise SuiteError("no checkpoints to average.")
    total: dict[str, torch.Tensor] = {}
    last: dict[str, torch.Tensor] = {}
    for path in paths:
        state = load_checkpoint(path)["model"]
        if total and (set(state) != set(total) or any(
                state[k].shape != total[k].shape for k in total)):
            raise SuiteError(f"checkpoint '{path}' does not match '{paths[0]}' (different keys "
                             "or shapes); average checkpoints of one run only.")
        for k, v in state.items():
            if v.is_floating_point():
                acc = v.detach().to(torch.float64)
                total[k] = total[k] + acc if k in total else acc
            else:
                total[k] = v
        last = state
    return {k: (v / len(paths)).to(last[k].dtype) if v.is_floating_point() else v
            for k, v in total.items()}


def average_run(run_dir: Path, last: int = 5, out: Path | None = None) -> Path:
    """Average the newest ``last`` ``step-N.pt`` of ``run_dir`` into ``out``.

    Returns:
        The written file (default ``<run>/checkpoints/averaged.pt``).
    """
    steps = step_checkpoints(run_dir)
    if not steps:
        raise SuiteError(f"run '{run_dir}' has no checkpoints/step-N.pt to average; train first.")
    chosen = [p for _, p in steps[-last:]]
    newest = load_checkpoint(chosen[-1])
    state = {
        "format": newest.get("format", 1), "task": newest.get("task", ""),
        "config": newest.get("config", {}), "step": newest.get("step", 0),
        "model": average_checkpoints(chosen),
        "averaged": [str(p.name) for p in chosen],
    }
    dest = out or Path(run_dir) / "checkpoints" / "averaged.pt"
    return atomic_save(state, dest)
