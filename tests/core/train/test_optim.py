"""Optimizer groups, LR schedules, L1, and gradient accumulation equivalence."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torchsuite.core.train import OptimConfig, fit, latest_checkpoint, load_checkpoint
from torchsuite.core.train.logs import read_metrics
from torchsuite.core.train.optim import build_optimizer, lr_factor


def _cfg(**kw: Any) -> OptimConfig:
    return OptimConfig(**{"warmup_steps": 10, "min_lr_ratio": 0.1, **kw})


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear", "inverse_sqrt"])
def test_warmup_then_schedule(schedule: str) -> None:
    cfg = _cfg(schedule=schedule)
    factors = [lr_factor(s, cfg, 110) for s in range(110)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    if schedule == "constant":
        assert factors[10:] == [1.0] * 100
    elif schedule == "inverse_sqrt":
        assert factors[49] == pytest.approx(math.sqrt(10 / 50))
    else:
        assert factors[10] == pytest.approx(1.0)
        assert lr_factor(110, cfg, 110) == pytest.approx(0.1)  # ends at min_lr_ratio
        assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    if schedule == "cosine":
        assert factors[60] == pytest.approx(0.1 + 0.9 * 0.5)  # half way: the midpoint


def test_weight_decay_only_on_weight_matrices() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    opt = build_optimizer(model, _cfg(weight_decay=0.1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight), id(model[2].weight)}
    sgd = build_optimizer(model, _cfg(name="sgd", momentum=0.5))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.5


def test_l1_penalty_shrinks_weights(make_task: Any, tmp_path: Path) -> None:
    def l1(run: Path) -> float:
        state = load_checkpoint(latest_checkpoint(run))["model"]
        return sum(float(v.abs().sum()) for k, v in state.items() if v.ndim >= 2)

    common = ["train.max_steps=30", "optim.weight_decay=0", "train.eval_every=0"]
    fit(make_task(*common), tmp_path / "plain")
    fit(make_task(*common, "optim.l1=0.5"), tmp_path / "l1")
    assert l1(tmp_path / "l1") < 0.8 * l1(tmp_path / "plain")


def test_grad_accum_equals_the_large_batch(make_task: Any, tmp_path: Path) -> None:
    # No dropout/noise: 2 micro-batches of 4 are the same 8 samples as one batch of 8.
    common = ["train.max_steps=9", "model.dropout=0", "data.noise=0", "train.eval_every=0"]
    fit(make_task(*common, "train.batch_size=8"), tmp_path / "big")
    fit(make_task(*common, "train.batch_size=4", "train.grad_accum=2"), tmp_path / "accum")
    a = [r["train.loss"] for r in read_metrics(tmp_path / "big" / "metrics.jsonl")
         if "train.loss" in r]
    b = [r["train.loss"] for r in read_metrics(tmp_path / "accum" / "metrics.jsonl")
         if "train.loss" in r]
    assert len(a) == 9 and a == pytest.approx(b, rel=1e-5)
    wa = load_checkpoint(latest_checkpoint(tmp_path / "big"))["model"]
    wb = load_checkpoint(latest_checkpoint(tmp_path / "accum"))["model"]
    for key, value in wa.items():
        torch.testing.assert_close(wb[key], value, rtol=1e-5, atol=1e-6)
