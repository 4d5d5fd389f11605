"""Reporting intermediate dev metrics of a training run to Optuna, so bad trials stop early.

:class:`PruningReporter` is the callback the tuner needs from the trainer,
``on_evaluate(step, metrics)`` with ``metrics`` keyed as the trainer logs them
(``{"dev.loss": 0.41, ...}``); it raises :class:`optuna.TrialPruned` when the
pruner says the trial is not promising. The core :class:`~torchsuite.core.train.Trainer`
has no callback list yet, so :class:`PruningTrainer` overrides its one evaluation
method to call the reporter after every dev evaluation (the step is the
evaluation count, which grows in proportion to the optimizer step because
``train.eval_every`` is fixed within a study).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna

from ..task import Task
from ..train.trainer import Trainer

__all__ = ["PruningReporter", "PruningTrainer"]


class PruningReporter:
    """Feeds one trial's dev metrics to Optuna and prunes it when told to.

    Args:
        trial: The running Optuna trial.
        metric: The optimised metric as logged (``dev.loss``).
    """

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.values: list[float] = []

    @property
    def last(self) -> float | None:
        """The most recent reported value, if any."""
        return self.values[-1] if self.values else None

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> None:
        """Report ``metrics[self.metric]`` at ``step``; raise ``TrialPruned`` if it is bad.

        Args:
            step: A number that grows with training (optimizer step or evaluation count).
            metrics: Dev metrics keyed as logged, e.g. ``{"dev.loss": 0.41}``.
        """
        value = metrics.get(self.metric)
        if value is None:
            return
        value = float(value)
        self.values.append(value)
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"{self.metric} became {value} at evaluation {step}")
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"{self.metric}={value:.6g} at evaluation {step} is not promising"
            )


class PruningTrainer(Trainer):
    """The core trainer, calling ``reporter.on_evaluate`` after each dev evaluation."""

    def __init__(self, task: Task[Any], run_dir: Path, reporter: PruningReporter) -> None:
        super().__init__(task, run_dir)
        self.reporter = reporter
        self._evaluations = 0

    def _evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        metrics = super()._evaluate(*args, **kwargs)
        self._evaluations += 1
        self.reporter.on_evaluate(self._evaluations, metrics)
        return metrics
