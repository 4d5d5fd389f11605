"""Training: the :class:`Trainer`, its config sections and checkpoints."""

from .config import DataConfig, OptimConfig, TrainableConfig, TrainConfig
from .trainer import FitResult, Trainer, fit

__all__ = ["DataConfig", "FitResult", "OptimConfig", "TrainConfig", "TrainableConfig", "Trainer", "fit"]
