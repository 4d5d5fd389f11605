"""The Linear-heavy task the lifecycle benchmarks use (``lifecycle-bench``), and helpers.

Not a benchmark itself: ``compress.py`` and ``serve.py`` import it
(it sits next to them, so it is on ``sys.path`` when they run). The task is an
ordinary :class:`~torchsuite.core.Task`, registered in a private registry that holds
only the core verbs and this task, and goes through the same code as ``suite
compress`` / ``suite serve``.

The model is an MLP of ``layers`` square Linear layers (``width`` wide) on a
teacher-generated regression problem (a fixed random ReLU network plus noise), so the
float model's dev MSE sits at the noise floor and a quantized model's drop is measurable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from torchsuite.core import (
    DataConfig,
    StepOutput,
    Task,
    TrainableConfig,
    hookimpl,
    option,
    resolve_config,
)
from torchsuite.core import registry as registry_mod
from torchsuite.core.registry import Registry

__all__ = ["BenchConfig", "BenchTask", "install_registry", "train_run"]


@dataclass
class BenchData(DataConfig):
    features: int = option(256, "input features", ge=1)
    n: int = option(8192, "training samples", ge=1)
    noise: float = option(0.1, "label noise std", ge=0.0)
    example_batch: int = option(16, "rows in example_inputs (latency is timed on these)", ge=1)


@dataclass
class BenchModel:
    width: int = option(1024, "hidden width", ge=1)
    layers: int = option(4, "hidden Linear layers", ge=1)


@dataclass
class BenchConfig(TrainableConfig):
    data: BenchData = field(default_factory=BenchData)
    model: BenchModel = field(default_factory=BenchModel)


class MLP(nn.Module):
    """x [B, F] -> [B, 1]: ``layers`` x (Linear(width) + ReLU), then a Linear head."""

    def __init__(self, features: int, width: int, layers: int) -> None:
        super().__init__()
        dims = [features] + [width] * layers
        self.backbone = nn.Sequential(*[m for a, b in pairwise(dims)
                                        for m in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _data(d: BenchData, n: int, seed: int) -> TensorDataset:
    teacher = torch.Generator().manual_seed(99)
    w1 = torch.randn(d.features, 64, generator=teacher) / d.features**0.5
    w2 = torch.randn(64, 1, generator=teacher) / 8.0
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d.features, generator=gen)
    y = torch.relu(x @ w1) @ w2 + d.noise * torch.randn(n, 1, generator=gen)
    return TensorDataset(x, y)


class BenchTask(Task[BenchConfig]):
    name = "lifecycle-bench"
    Config = BenchConfig
    description = "Linear-heavy MLP regression (lifecycle benchmarks)"

    def datasets(self) -> Mapping[str, Dataset[Any]]:
        d = self.cfg.data
        return {"train": _data(d, d.n, 1), "dev": _data(d, 1024, 2), "test": _data(d, 1024, 3)}

    def build_model(self) -> nn.Module:
        m = self.cfg.model
        return MLP(self.cfg.data.features, m.width, m.layers)

    def training_step(self, model: nn.Module, batch: Any) -> StepOutput:
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        return StepOutput(loss, {"mse": loss.detach()}, weight=float(len(x)))

    def example_inputs(self) -> tuple[torch.Tensor]:
        d = self.cfg.data
        return (torch.randn(d.example_batch, d.features,
                            generator=torch.Generator().manual_seed(7)),)


@hookimpl
def register_tasks(register: Any) -> None:
    register(BenchTask)


def install_registry() -> Registry:
    """Make ``get_registry()`` hold the core verbs and ``lifecycle-bench`` only."""
    reg = Registry().load([EntryPoint("lifecycle-bench", __name__, "suite.plugins")])
    registry_mod._REGISTRY = reg
    return reg


def train_run(run_dir: Path, overrides: list[str]) -> Path:
    """Train ``lifecycle-bench`` into ``run_dir`` (quiet) and return it."""
    from torchsuite.core.train import fit

    base = ["train.progress=off", "train.tensorboard=false", "train.log_every=100000",
            "train.batch_size=128", "optim.lr=1e-3", "optim.warmup_steps=20",
            "train.eval_every=0"]
    task = BenchTask(resolve_config(BenchConfig, overrides=[*base, *overrides]))
    fit(task, run_dir)
    return run_dir
