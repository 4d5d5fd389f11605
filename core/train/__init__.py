"""Training: the :class:`Trainer`, its config sections and checkpoints.

Public names:

* :func:`fit`, :class:`Trainer`, :class:`FitResult`, :class:`TrainingDiverged`
* config sections :class:`TrainableConfig` (``[train]`` + ``[optim]``),
  :class:`TrainConfig`, :class:`OptimConfig`, :class:`DataConfig`
* checkpoints: :func:`load_checkpoint` (``weights_only=True``), :func:`best_checkpoint`,
  :func:`latest_checkpoint`, :func:`load_model_state` (task + shape checks)
* callbacks: :class:`Callback` (hooks ``on_fit_start`` ... ``on_fit_end``), :class:`TrainState`,
  the built-in :class:`EMACallback` (``train.callbacks=["ema"]``), :func:`ema_weights`
  (see :mod:`.callbacks`)
* :class:`ResumableSampler` (seeded, rank-sharded, resumable mid-epoch)
* several optimizers / adversarial (GAN) training: :class:`AdversarialTask`
  (hooks ``configure_optimizers`` + ``adversarial_step``), :class:`OptimizerSpec`
  (see :mod:`.adversarial`)
"""

from .adversarial import AdversarialTask, OptimizerSpec
from .callbacks import Callback, EMACallback, TrainState, ema_weights
from .checkpoint import best_checkpoint, latest_checkpoint, load_checkpoint, load_model_state
from .config import DataConfig, OptimConfig, TrainableConfig, TrainConfig
from .data import ResumableSampler
from .trainer import FitResult, Trainer, TrainingDiverged, fit

__all__ = [
    "AdversarialTask",
    "Callback",
    "DataConfig",
    "EMACallback",
    "FitResult",
    "OptimConfig",
    "OptimizerSpec",
    "ResumableSampler",
    "TrainConfig",
    "TrainState",
    "TrainableConfig",
    "Trainer",
    "TrainingDiverged",
    "best_checkpoint",
    "ema_weights",
    "fit",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model_state",
]
