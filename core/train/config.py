"""Config sections owned by the trainer: ``[train]`` and ``[optim]``.

Task configs subclass :class:`TrainableConfig` so every task accepts the same
``train.*`` and ``optim.*`` keys (``suite train music train.max_steps=100``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import BaseConfig, option

__all__ = ["DataConfig", "OptimConfig", "TrainConfig", "TrainableConfig"]


@dataclass
class TrainConfig:
    """How long and how to train."""

    max_steps: int = option(1000, "optimizer steps to run", ge=1)
    batch_size: int = option(32, "samples per batch on each process (before accumulation)", ge=1)
    grad_accum: int = option(1, "micro-batches accumulated per optimizer step", ge=1)
    eval_every: int = option(200, "evaluate on dev every N steps (0: only at the end)", ge=0)
    eval_batches: int = option(0, "cap on dev batches per evaluation (0: whole dev split)", ge=0)
    eval_task_metrics: bool = option(
        True, "at evaluations also run the task's own evaluate() when the task defines one"
    )
    log_every: int = option(20, "write a metrics line every N steps", ge=1)
    progress: str = option(
        "auto", "progress display; auto = a bar on a terminal, plain lines otherwise",
        choices=("auto", "bar", "lines", "off"),
    )
    tensorboard: bool = option(True, "also write TensorBoard events when tensorboard is installed")
    checkpoints: bool = option(True, "write checkpoints (off: the run cannot be resumed)")
    checkpoint_every: int = option(0, "also checkpoint every N steps (0: at evaluations)", ge=0)
    keep_last: int = option(2, "how many recent checkpoints to keep besides the best", ge=1)
    seed: int = option(0, "seed for python, numpy and torch")
    precision: str = option(
        "auto",
        "numeric precision; auto = bf16 autocast on CUDA when supported, else fp32",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    device: str = option("auto", "cpu, cuda, cuda:N or auto")
    compile: bool = option(False, "wrap the model with torch.compile")
    num_workers: int = option(0, "DataLoader worker processes", ge=0)
    strategy: str = option(
        "ddp", "how several processes (torchrun) share the model: ddp copies it, fsdp shards it",
        choices=("ddp", "fsdp"),
    )
    find_unused_parameters: bool = option(
        False, "DDP: allow parameters that get no gradient in a step (frozen branches)"
    )
    monitor: str = option("", "dev metric for best checkpoint / early stopping (empty: dev.loss)")
    monitor_mode: str = option("min", "whether the monitored metric should go down or up",
                               choices=("min", "max"))
    patience: int = option(0, "stop after N evaluations without improvement (0: never)", ge=0)
    clip_grad_norm: float = option(1.0, "clip the global gradient norm (0: off)", ge=0.0)
    callbacks: list[str] = option(
        [], "training callbacks by registered name, run in this order, e.g. [\"ema\"]"
    )
    ema_decay: float = option(0.999, "decay of the 'ema' callback's weight average",
                               ge=0.0, le=1.0)


@dataclass
class OptimConfig:
    """Optimizer, regularisation and learning-rate schedule."""

    name: str = option("adamw", "optimizer", choices=("adamw", "sgd"))
    lr: float = option(3e-4, "peak learning rate", ge=0.0)
    weight_decay: float = option(
        0.01, "decoupled weight decay (L2) on weight matrices (not biases or norms)", ge=0.0
    )
    l1: float = option(0.0, "L1 penalty coefficient on weight matrices (0: off)", ge=0.0)
    betas: list[float] = option([0.9, 0.98], "AdamW betas")
    eps: float = option(1e-8, "AdamW epsilon", ge=0.0)
    momentum: float = option(0.9, "SGD momentum", ge=0.0, le=1.0)
    label_smoothing: float = option(
        0.0, "label smoothing for tasks whose loss is a cross entropy (read by the task)",
        ge=0.0, le=1.0,
    )
    schedule: str = option(
        "cosine", "learning-rate schedule after warm-up",
        choices=("constant", "cosine", "linear", "inverse_sqrt"),
    )
    warmup_steps: int = option(100, "linear warm-up steps", ge=0)
    min_lr_ratio: float = option(0.1, "final lr as a fraction of peak (cosine/linear)",
                                 ge=0.0, le=1.0)


@dataclass
class DataConfig:
    """Where a task's prepared data lives. Tasks subclass it with their own keys."""

    dir: str = option("", "prepared data directory (empty: data/<task>)")


@dataclass
class TrainableConfig(BaseConfig):
    """Base for task configs that train through the core Trainer."""

    train: TrainConfig = option(default_factory=TrainConfig, help="trainer settings")
    optim: OptimConfig = option(default_factory=OptimConfig, help="optimizer settings")
