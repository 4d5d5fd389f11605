"""``tiny-train``: a seconds-long task that exercises every trainer feature in tests.

Loaded in-process by ``conftest.py`` and installed as a plugin (entry point
``tinytrain``) for subprocess tests of ``suite train``. Randomness on purpose:
dropout in the model and Gaussian noise in :meth:`augment` (global torch RNG),
so bit-exact resume really checks the RNG and data position.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset, TensorDataset
from torchsuite.core import DataConfig, StepOutput, Task, TrainableConfig, hookimpl, option


@dataclass
class TinyData(DataConfig):
    kind: str = option("map", "map-style TensorDataset or a resumable IterableDataset",
                       choices=("map", "stream", "shards"))
    n: int = option(72, "training samples", ge=1)
    noise: float = option(0.1, "std of augmentation noise (uses the global torch RNG)", ge=0.0)
    nan_at: int = option(0, "training_step call from which the loss is NaN (0: never)", ge=0)
    stop_at: int = option(0, "training_step call at which the task signals itself (0: never)",
                          ge=0)
    stop_signal: str = option("SIGTERM", "signal sent at stop_at", choices=("SIGTERM", "SIGINT"))
    sleep: float = option(0.0, "seconds to sleep per training_step (signal tests)", ge=0.0)


@dataclass
class TinyModel:
    hidden: int = option(16, "hidden units", ge=1)
    dropout: float = option(0.1, "dropout", ge=0.0, le=1.0)


@dataclass
class TinyConfig(TrainableConfig):
    data: TinyData = field(default_factory=TinyData)
    model: TinyModel = field(default_factory=TinyModel)


def _xy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=gen)
    return x, y


class TinyStream(IterableDataset):
    """A shuffled, rank-sharded stream with the ShardStream resume interface."""

    def __init__(self, n: int, seed: int) -> None:
        self.x, self.y = _xy(n, 11)
        self.seed, self.epoch, self.consumed = seed, 0, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.consumed = epoch, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(
            self.seed + 100 * self.epoch)).tolist()
        mine = order[rank::world]
        while self.consumed < len(mine):
            i = mine[self.consumed]
            self.consumed += 1  # counted before yielding: the state after a batch is exact
            yield self.x[i], self.y[i]
        self.consumed = 0
        self.epoch += 1


class TinyTask(Task[TinyConfig]):
    name = "tiny-train"
    Config = TinyConfig
    description = "trainer test task"

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__(cfg)
        self.calls = 0

    def datasets(self) -> Mapping[str, Dataset[Any]]:
        d = self.cfg.data
        if d.kind == "stream":
            train: Dataset[Any] = TinyStream(d.n, self.cfg.train.seed)
        elif d.kind == "shards":
            from torchsuite.core.data import ShardStream

            train = ShardStream(d.dir, "train", seed=self.cfg.train.seed, shuffle_buffer=16,
                                block_size=4, transform=lambda r: (r["x"], r["y"]))
        else:
            train = TensorDataset(*_xy(d.n, 11))
        return {"train": train, "dev": TensorDataset(*_xy(24, 12))}

    def dataloader(self, split: str, *, train: bool) -> Any:
        if split == "train" and self.cfg.data.kind == "shards":
            from torchsuite.core.data import StreamLoader

            return StreamLoader(self.datasets()["train"], batch_size=self.cfg.train.batch_size,
                                num_workers=self.cfg.train.num_workers)
        return super().dataloader(split, train=train)

    def augment(self, batch: Any) -> Any:
        x, y = batch
        return x + self.cfg.data.noise * torch.randn_like(x), y

    def build_model(self) -> nn.Module:
        m = self.cfg.model
        return nn.Sequential(nn.Linear(4, m.hidden), nn.LayerNorm(m.hidden), nn.GELU(),
                             nn.Dropout(m.dropout), nn.Linear(m.hidden, 1))

    def training_step(self, model: nn.Module, batch: Any) -> StepOutput:
        self.calls += model.training  # count training calls only, not dev batches
        d = self.cfg.data
        if d.sleep:
            time.sleep(d.sleep)
        if d.stop_at and self.calls == d.stop_at and model.training:
            os.kill(os.getpid(), getattr(signal, d.stop_signal))
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        if d.nan_at and self.calls >= d.nan_at and model.training:
            loss = loss * float("nan")
        return StepOutput(loss, {"mae": (model(x) - y).abs().mean().detach()},
                          weight=float(len(x)))

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.randn(2, 4),)


@hookimpl
def register_tasks(register: Any) -> None:
    register(TinyTask)
