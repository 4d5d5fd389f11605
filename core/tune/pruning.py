"""Reporting intermediate dev metrics of a training run to Optuna, so bad trials stop early.

:class:`PruningReporter` is what the tuner needs to hear from the trainer,
``on_evaluate(step, metrics)`` with ``metrics`` keyed as the trainer logs them
(``{"dev.loss": 0.41, ...}``); it raises :class:`optuna.TrialPruned` when the
pruner says the trial is not promising. :class:`PruningCallback` connects it to
the core :class:`~torchsuite.core.train.Trainer` through the public callback
hook ``on_evaluate`` (the reported step is the evaluation count, which grows in
proportion to the optimizer step because ``train.eval_every`` is fixed within a
study; the count is saved in checkpoints, so a resumed trial continues it).
:class:`PruningTrainer` is the trainer with that callback added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from ..task import Task
from ..train.callbacks import Callback, TrainState
from ..train.trainer import Trainer

__all__ = ["PruningCallback", "PruningReporter", "PruningTrainer"]


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

    def on_evaluate(self, step: int, metrics: dict[str, float], *, final: bool = False) -> None:
        """Report ``metrics[self.metric]`` at ``step``; raise ``TrialPruned`` if it is bad.

        Args:
            step: A number that grows with training (optimizer step or evaluation count).
            metrics: Dev metrics keyed as logged, e.g. ``{"dev.loss": 0.41}``.
            final: The run's last evaluation: reported, but never pruned (the trial is
                complete anyway, and its value is worth more than a pruned mark).
        """
        value = metrics.get(self.metric)
        if value is None:
            return
        value = float(value)
        self.values.append(value)
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"{self.metric} became {value} at evaluation {step}")
        self.trial.report(value, step)
        if not final and self.trial.should_prune():
            raise optuna.TrialPruned(
                f"{self.metric}={value:.6g} at evaluation {step} is not promising"
            )


class PruningCallback(Callback):
    """Passes each dev evaluation to a :class:`PruningReporter`; a pruned trial stops there.

    Args:
        reporter: Where each dev evaluation goes.
        evaluations_done: Dev evaluations already made before this fit (a resumed run
            whose checkpoint lacks this callback's state), so the reported step lines
            up with trials that ran without a break.
    """

    name = "pruning"

    def __init__(self, reporter: PruningReporter, evaluations_done: int = 0) -> None:
        self.reporter = reporter
        self.evaluations = evaluations_done
        self._state: TrainState | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self._state = state

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> None:
        assert self._state is not None
        self.evaluations += 1
        try:
            self.reporter.on_evaluate(self.evaluations, metrics,
                                      final=step >= self._state.max_steps)
        except optuna.TrialPruned as exc:
            # the evaluation is already logged; the run directory also says why it ended
            self._state.log({"step": step, **metrics, "event": "pruned", "reason": str(exc)})
            raise

    def state_dict(self) -> dict[str, Any]:
        return {"evaluations": self.evaluations}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.evaluations = int(state["evaluations"])


class PruningTrainer(Trainer):
    """The core trainer with a :class:`PruningCallback` after any other callbacks.

    Args:
        task: The task bound to the trial's config.
        run_dir: The trial's run directory.
        reporter: Where each dev evaluation goes.
        resume_from: A run directory or checkpoint to continue (a retried trial).
        evaluations_done: Dev evaluations the resumed run already made (used when
            its checkpoint does not hold the count itself).
        callbacks: Further callbacks, called before the pruning one.
    """

    def __init__(
        self,
        task: Task[Any],
        run_dir: Path,
        reporter: PruningReporter,
        *,
        resume_from: Path | None = None,
        evaluations_done: int = 0,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.pruning = PruningCallback(reporter, evaluations_done)
        super().__init__(task, run_dir, resume_from=resume_from,
                         callbacks=[*callbacks, self.pruning])
        self.reporter = reporter
