"""The training loop (first cut: single process; the full Trainer lands with issue #5)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import SuiteError
from ..task import Task

__all__ = ["FitResult", "Trainer", "fit"]


@dataclass
class FitResult:
    """What a finished fit reports."""

    run_dir: Path
    steps: int
    last_loss: float
    dev_metrics: dict[str, float] = field(default_factory=dict)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class Trainer:
    """Drives a :class:`~torchsuite.core.task.Task` through its training steps."""

    def __init__(self, task: Task[Any], run_dir: Path) -> None:
        self.task = task
        self.cfg: Any = task.cfg
        self.run_dir = Path(run_dir)
        dev = self.cfg.train.device
        self.device = torch.device("cpu" if dev == "auto" and not torch.cuda.is_available()
                                   else ("cuda" if dev == "auto" else dev))

    def _batches(self) -> Iterator[Any]:
        while True:
            empty = True
            for batch in self.task.dataloader("train", train=True):
                empty = False
                yield batch
            if empty:
                raise SuiteError(f"the train split of task '{self.task.name}' is empty.")

    def fit(self) -> FitResult:
        torch.manual_seed(self.cfg.train.seed)
        model = self.task.build_model().to(self.device)
        ocfg = self.cfg.optim
        opt = torch.optim.AdamW(model.parameters(), lr=ocfg.lr, weight_decay=ocfg.weight_decay)
        metrics_path = self.run_dir / "metrics.jsonl"
        loss_value = float("nan")
        t0 = time.perf_counter()
        batches = self._batches()
        with metrics_path.open("a") as log:
            for step in range(1, self.cfg.train.max_steps + 1):
                model.train()
                batch = _to_device(self.task.augment(next(batches)), self.device)
                out = self.task.training_step(model, batch)
                loss_value = float(out.loss)
                if not math.isfinite(loss_value):
                    raise SuiteError(f"loss became {loss_value} at step {step}; lower optim.lr.")
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                if step % self.cfg.train.log_every == 0 or step == self.cfg.train.max_steps:
                    rec = {"step": step, "train.loss": loss_value,
                           "elapsed_s": round(time.perf_counter() - t0, 3)}
                    log.write(json.dumps(rec) + "\n")
                    print(f"step {step}/{self.cfg.train.max_steps} loss {loss_value:.4f}", flush=True)
        dev = {}
        if "dev" in self.task.datasets():
            dev = {f"dev.{k}": v for k, v in self.task.evaluate(model, "dev").items()}
            with metrics_path.open("a") as log:
                log.write(json.dumps({"step": self.cfg.train.max_steps, **dev}) + "\n")
        ckpt_dir = self.run_dir / "checkpoints"
        ckpt_dir.mkdir(exist_ok=True)
        torch.save({"model": model.state_dict(), "step": self.cfg.train.max_steps,
                    "task": self.task.name}, ckpt_dir / "last.pt")
        return FitResult(self.run_dir, self.cfg.train.max_steps, loss_value, dev)


def fit(task: Task[Any], run_dir: Path) -> FitResult:
    """Train ``task`` and write everything into ``run_dir``."""
    return Trainer(task, run_dir).fit()
