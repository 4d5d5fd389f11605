"""Optimizer and learning-rate schedule from an :class:`OptimConfig`.

Weight decay (and the optional L1 penalty) applies to weight matrices only:
parameters with two or more dimensions (linear/conv kernels, embeddings).
Biases and normalisation gains are 1-D and are left alone, as usual for
Transformers and CNNs alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, SuiteError
from .config import OptimConfig

__all__ = ["build_optimizer", "build_scheduler", "decayed_parameters", "l1_penalty", "lr_factor",
           "param_groups"]


def decayed_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable parameters split into (weight matrices, everything else)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return decay, no_decay


def param_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: weight matrices with ``weight_decay``, the rest without."""
    params = list(params)
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW or SGD with two parameter groups: decayed weight matrices, undecayed rest."""
    decay, no_decay = decayed_parameters(model)
    if not decay and not no_decay:
        raise SuiteError(
            "the model has no trainable parameters (all have requires_grad=False); "
            "unfreeze some layers in the task's build_model()."
        )
    return optimizer_for([*decay, *no_decay], cfg)


def optimizer_for(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """``cfg.name`` (AdamW or SGD) over ``params``, weight matrices decayed, the rest not."""
    groups = param_groups(params, cfg.weight_decay)
    if cfg.name == "adamw":
        if len(cfg.betas) != 2:
            raise ConfigError(f"config key 'optim.betas' must hold two numbers, got {cfg.betas}.")
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]),
                                 eps=cfg.eps)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def lr_factor(step: int, cfg: OptimConfig, max_steps: int) -> float:
    """Multiplier of the peak lr for optimizer step ``step`` (0-based).

    Linear warm-up over ``warmup_steps``, then ``constant``, ``cosine`` or ``linear``
    decay to ``min_lr_ratio`` at ``max_steps``, or ``inverse_sqrt`` decay.
    """
    warmup = cfg.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "inverse_sqrt":
        return math.sqrt(max(warmup, 1) / (step + 1))
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    if cfg.schedule == "cosine":
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 - (1.0 - cfg.min_lr_ratio) * progress  # linear


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, max_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`lr_factor`; its state_dict holds only numbers."""

    def factor(step: int) -> float:  # a plain function, so state_dict() stores no callable
        return lr_factor(step, cfg, max_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def l1_penalty(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum of absolute values of ``params`` (a scalar tensor)."""
    return torch.stack([p.abs().sum() for p in params]).sum()
