"""``template-regression``: learn y = x·w + b + noise from synthetic data.

Small enough to train in a second, complete enough to exercise every core verb:
four splits (``target`` has a shifted weight vector, for fine-tuning), a model
with a ``backbone`` and a ``head`` (for freezing / feature transfer), example
inputs (for export and serving).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from torchsuite.core import DataConfig, StepOutput, Task, TrainableConfig, option


@dataclass
class RegressionData(DataConfig):
    """Synthetic data: sizes and noise."""

    features: int = option(8, "input features", ge=1)
    train_size: int = option(2048, "training samples", ge=1)
    eval_size: int = option(256, "samples in dev, test and target", ge=1)
    noise: float = option(0.05, "std of the label noise", ge=0.0)
    target_shift: float = option(0.5, "how far the target split's weights move", ge=0.0)


@dataclass
class RegressionModel:
    """MLP size."""

    hidden: int = option(32, "hidden units", ge=1)
    dropout: float = option(0.0, "dropout after the hidden layer", ge=0.0, le=1.0)


@dataclass
class RegressionConfig(TrainableConfig):
    """Config of ``template-regression``."""

    data: RegressionData = field(default_factory=RegressionData)
    model: RegressionModel = field(default_factory=RegressionModel)


class MLP(nn.Module):
    """backbone: Linear -> GELU -> Dropout; head: Linear to one output."""

    def __init__(self, features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, F] -> [B, 1]
        return self.head(self.backbone(x))


class TemplateRegression(Task[RegressionConfig]):
    """Noisy linear regression; the metric is dev MSE."""

    name = "template-regression"
    Config = RegressionConfig
    description = "synthetic linear regression (the plugin template's example task)"

    def datasets(self) -> Mapping[str, Dataset[tuple[torch.Tensor, torch.Tensor]]]:
        d = self.cfg.data
        gen = torch.Generator().manual_seed(1234)  # data is fixed; cfg.train.seed varies training
        w = torch.randn(d.features, 1, generator=gen)
        w_target = w + d.target_shift * torch.randn(d.features, 1, generator=gen)

        def make(n: int, weights: torch.Tensor) -> TensorDataset:
            x = torch.randn(n, d.features, generator=gen)
            y = x @ weights + 0.3 + d.noise * torch.randn(n, 1, generator=gen)
            return TensorDataset(x, y)

        return {
            "train": make(d.train_size, w),
            "dev": make(d.eval_size, w),
            "test": make(d.eval_size, w),
            "target": make(d.eval_size, w_target),
        }

    def build_model(self) -> nn.Module:
        return MLP(self.cfg.data.features, self.cfg.model.hidden, self.cfg.model.dropout)

    def training_step(
        self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> StepOutput:
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        return StepOutput(loss, {"mse": loss.detach()}, weight=float(len(x)))

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.randn(4, self.cfg.data.features),)
