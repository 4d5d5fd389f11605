"""Checkpoints: atomic writes, retention, loading with ``weights_only=True``.

A checkpoint is a dict of plain tensors and primitives (no pickled objects), so
``torch.load(path, weights_only=True)`` reads it::

    {"format": 1, "task": str, "config": dict, "step": int, "epoch": int,
     "model": state_dict, "optimizer": ..., "scheduler": ..., "scaler": ...,
     "ranks": [{"rng": ..., "data": ...}, ...],   # one entry per process
     "trainer": {"best": float | None, "best_step": int, "bad_evals": int, ...},
     "metrics": {"dev.loss": ...}}

Files live in ``<run>/checkpoints/``: ``step-<N>.pt`` (the last ``keep_last``)
and ``best.pt`` (a hard link to the best step file, or a copy where links are
not supported). Writes go to a temporary file that is fsync'ed and then
renamed over the target, so a crash mid-save leaves the previous files intact.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SuiteError

__all__ = [
    "FORMAT",
    "atomic_save",
    "best_checkpoint",
    "capture_rng",
    "checkpoint_dir",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model_state",
    "prune_checkpoints",
    "restore_rng",
    "save_checkpoint",
    "step_checkpoints",
]

FORMAT = 1
_STEP_RE = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_dir(run_dir: Path) -> Path:
    """``<run>/checkpoints``."""
    return Path(run_dir) / "checkpoints"


def atomic_save(obj: Any, path: Path) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step-N.pt``, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The highest ``step-N.pt`` of a run, or ``None``."""
    steps = step_checkpoints(run_dir)
    return steps[-1][1] if steps else None


def best_checkpoint(run_dir: Path) -> Path:
    """``best.pt`` if the run has one, else its latest step checkpoint.

    Raises:
        SuiteError: if the run has no checkpoint at all.
    """
    best = checkpoint_dir(run_dir) / "best.pt"
    if best.is_file():
        return best
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise SuiteError(
            f"run '{run_dir}' has no checkpoint in '{checkpoint_dir(run_dir)}'; it stopped before "
            "its first save (or ran with train.checkpoints=false). Train it again."
        )
    return latest


def save_checkpoint(
    state: dict[str, Any], run_dir: Path, step: int, *, is_best: bool, keep_last: int
) -> Path:
    """Write ``step-<step>.pt`` atomically, update ``best.pt``, prune old step files."""
    folder = checkpoint_dir(run_dir)
    path = atomic_save(state, folder / f"step-{step}.pt")
    if is_best:
        _link_best(path, folder / "best.pt")
    prune_checkpoints(run_dir, keep_last)
    return path


def _link_best(src: Path, best: Path) -> None:
    """Point ``best.pt`` at ``src`` without a second write where the filesystem allows."""
    tmp = best.with_name(f".{best.name}.{os.getpid()}.tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, best)
    _fsync_dir(best.parent)


def prune_checkpoints(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step files (``best.pt`` is its own link)."""
    for _, path in step_checkpoints(run_dir)[:-keep_last]:
        path.unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; errors name the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"checkpoint '{path}' does not exist.")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated/corrupt file, or one holding pickled objects
        raise SuiteError(
            f"checkpoint '{path}' cannot be read ({type(exc).__name__}: {str(exc)[:200]}). "
            "It may be truncated or not a torchsuite checkpoint; use an older step-N.pt "
            "from the same folder."
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise SuiteError(f"'{path}' is not a torchsuite checkpoint (no 'model' entry).")
    return ckpt


def load_model_state(
    model: nn.Module, ckpt: dict[str, Any], *, task: str, path: Path | str = "checkpoint"
) -> None:
    """Load ``ckpt["model"]`` into ``model`` after checking task and shapes.

    Raises:
        SuiteError: the checkpoint is from another task or the model's shapes differ
            (the config that built ``model`` is incompatible with the checkpoint's).
    """
    saved_task = ckpt.get("task", "")
    if saved_task and saved_task != task:
        raise SuiteError(
            f"checkpoint '{path}' was written by task '{saved_task}', not '{task}'; "
            f"use a run of '{task}' or train with `suite train {saved_task}`."
        )
    state = ckpt["model"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"shape mismatch (checkpoint vs config) in {', '.join(wrong[:3])}")
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}")
        raise SuiteError(
            f"checkpoint '{path}' does not fit the model built from the current config: "
            f"{'; '.join(parts)}. Use the run's own config (drop the model.* overrides) or "
            "start a fresh run."
        )
    model.load_state_dict(state)


def capture_rng() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors and primitives."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(
        (nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
         nps["gauss"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
