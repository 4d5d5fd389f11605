"""``lifecycle-seq``: a seconds-long token-tagging task with an LSTM, for lifecycle tests.

Per-token logits ``[B, T, C]`` (distillation by per-token KL), an ``nn.LSTM`` and
``nn.Linear`` layers (dynamic int8), a ``backbone``/``head`` split (freezing and
feature transfer) and a ``target`` split whose tagging rule differs from ``train``
(fine-tuning has something to learn).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from torchsuite.core import DataConfig, StepOutput, Task, TrainableConfig, hookimpl, option

__all__ = ["SeqConfig", "SeqTagger", "SeqTask", "register_tasks"]


@dataclass
class SeqData(DataConfig):
    vocab: int = option(12, "token ids 0..vocab-1", ge=2)
    classes: int = option(5, "tag classes", ge=2)
    length: int = option(8, "tokens per sequence", ge=1)
    n: int = option(256, "training sequences", ge=1)


@dataclass
class SeqModel:
    embed: int = option(16, "embedding size", ge=1)
    hidden: int = option(32, "LSTM hidden size", ge=1)


@dataclass
class SeqConfig(TrainableConfig):
    data: SeqData = field(default_factory=SeqData)
    model: SeqModel = field(default_factory=SeqModel)


class Backbone(nn.Module):
    """Embedding -> LSTM; tokens [B, T] -> features [B, T, H]."""

    def __init__(self, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))  # [B, T, H]
        return out


class SeqTagger(nn.Module):
    """tokens [B, T] -> logits [B, T, C]."""

    def __init__(self, d: SeqData, m: SeqModel) -> None:
        super().__init__()
        self.backbone = Backbone(d.vocab, m.embed, m.hidden)
        self.proj = nn.Linear(m.hidden, m.hidden)
        self.head = nn.Linear(m.hidden, d.classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.proj(self.backbone(tokens))))


def _data(d: SeqData, n: int, seed: int, shift: int) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, d.vocab, (n, d.length), generator=gen)
    prev = torch.cat([torch.zeros(n, 1, dtype=torch.long), x[:, :-1]], dim=1)
    y = (x + prev + shift) % d.classes  # depends on the previous token: needs the LSTM
    return TensorDataset(x, y)


class SeqTask(Task[SeqConfig]):
    name = "lifecycle-seq"
    Config = SeqConfig
    description = "token tagging with an LSTM (lifecycle tests)"

    def datasets(self) -> Mapping[str, Dataset[Any]]:
        d = self.cfg.data
        return {"train": _data(d, d.n, 1, 0), "dev": _data(d, 64, 2, 0),
                "test": _data(d, 64, 3, 0), "target": _data(d, 96, 4, 1)}

    def build_model(self) -> nn.Module:
        return SeqTagger(self.cfg.data, self.cfg.model)

    def training_step(self, model: nn.Module, batch: Any) -> StepOutput:
        x, y = batch
        logits = model(x)  # [B, T, C]
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        acc = (logits.argmax(-1) == y).float().mean()
        return StepOutput(loss, {"acc": acc.detach()}, weight=float(y.numel()))

    def example_inputs(self) -> tuple[torch.Tensor]:
        d = self.cfg.data
        return (torch.randint(0, d.vocab, (2, d.length)),)

    # serving hooks: {"tokens": [3, 1, 4, ...]} (any length) -> {"tags": [...]}; the default
    # serve_predict groups requests of equal length into one batch
    def serve_decode(self, payload: Any) -> tuple[torch.Tensor]:
        tokens = payload.get("tokens") if isinstance(payload, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ValueError("expected {\"tokens\": [int, ...]}")
        if any(not 0 <= t < self.cfg.data.vocab for t in tokens):
            raise ValueError(f"token ids must be in 0..{self.cfg.data.vocab - 1}")
        return (torch.tensor(tokens, dtype=torch.long),)

    def serve_encode(self, output: list[torch.Tensor]) -> dict[str, Any]:
        return {"tags": output[0].argmax(-1).tolist()}  # logits [T, C] -> tags [T]

    def serve_example(self) -> dict[str, Any]:
        return {"tokens": list(range(min(5, self.cfg.data.vocab)))}


@hookimpl
def register_tasks(register: Any) -> None:
    register(SeqTask)
