"""Reporting intermediate dev metrics of a training run to Optuna, so bad trials stop early.

:class:`PruningReporter` is the callback the tuner needs from the trainer,
``on_evaluate(step, metrics)`` with ``metrics`` keyed as the trainer logs them
(``{"dev.loss": 0.41, ...}``); it raises :class:`optuna.TrialPruned` when the
pruner says the trial is not promising. The core :class:`~torchsuite.core.train.Trainer`
has no callback list yet, so :class:`PruningTrainer` overrides its one evaluation
method to call the reporter after every dev evaluation (the step is the
evaluation count, which grows in proportion to the optimizer step because
``train.eval_every`` is fixed within a study; a resumed trial starts counting
at the evaluations its checkpoint had already made).
"""

from __future__ import annotations

import json
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


class PruningTrainer(Trainer):
    """The core trainer, calling ``reporter.on_evaluate`` after each dev evaluation.

    Args:
        task: The task bound to the trial's config.
        run_dir: The trial's run directory.
        reporter: Where each dev evaluation goes.
        resume_from: A run directory or checkpoint to continue (a retried trial).
        evaluations_done: Dev evaluations the resumed run already made, so the
            reported step lines up with trials that ran without a break.
    """

    def __init__(
        self,
        task: Task[Any],
        run_dir: Path,
        reporter: PruningReporter,
        *,
        resume_from: Path | None = None,
        evaluations_done: int = 0,
    ) -> None:
        super().__init__(task, run_dir, resume_from=resume_from)
        self.reporter = reporter
        self._evaluations = evaluations_done

    def _evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        metrics = super()._evaluate(*args, **kwargs)
        self._evaluations += 1
        tcfg = self.cfg.train
        # the optimizer step of this evaluation (the trainer evaluates every eval_every
        # steps and at max_steps), for the record the trainer cannot write any more
        step = min(self._evaluations * tcfg.eval_every, tcfg.max_steps) \
            if tcfg.eval_every > 0 else tcfg.max_steps
        try:
            self.reporter.on_evaluate(self._evaluations, metrics, final=step >= tcfg.max_steps)
        except optuna.TrialPruned as exc:
            # the trainer logs an evaluation after this returns; pruning unwinds it first,
            # so the run directory gets the deciding numbers here (appended, line by line
            # like the trainer's own line-buffered log)
            record = {"step": step, **metrics, "event": "pruned", "reason": str(exc)}
            with (self.run_dir / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            raise
        return metrics
