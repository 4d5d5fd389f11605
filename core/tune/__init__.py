"""Hyper-parameter search on top of Optuna: ``suite tune``.

A study trains one normal run directory per trial (``runs/<task>/<study>/trial-NNN``)
with the core ``fit``, reports each dev evaluation to Optuna so a median,
successive-halving or Hyperband pruner stops bad trials early, and persists in SQLite in the study
directory (or any Optuna storage URL, so several machines can share one study).

Python use::

    from torchsuite.core.tune import TuneConfig, Tuner

    settings = TuneConfig(trials=20, metric="dev.loss",
                          params={"optim.lr": "loguniform:1e-4:1e-2"})
    result = Tuner(MyTask, settings, overrides=["train.max_steps=500"]).run()
    result.best_params, result.files["best_config"]

Pieces: :mod:`.space` (the ``--param`` grammar), :mod:`.settings` (the ``[tune]``
table), :mod:`.pruning` (the trainer callback), :mod:`.study` (trials and resume),
:mod:`.report` (table, best TOML, plot), :mod:`.commands` (the CLI verb).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Param",
    "PruningCallback",
    "PruningReporter",
    "TrialFailed",
    "TuneConfig",
    "TuneResult",
    "Tuner",
    "format_override",
    "parse_param",
    "parse_params",
    "split_tune_table",
    "tune_config",
]

# Optuna is an extra (``pip install 'torchsuite[tune]'``): names load on first use, so
# the ``suite tune`` verb (core/tune/commands.py) registers, and explains what to
# install, on an installation without it.
_HOME = {
    "Param": "space", "format_override": "space", "parse_param": "space",
    "parse_params": "space", "PruningReporter": "pruning", "PruningCallback": "pruning",
    "TrialFailed": "study",
    "TuneResult": "study", "Tuner": "study", "TuneConfig": "settings",
    "split_tune_table": "settings", "tune_config": "settings",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
