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
table), :mod:`.pruning` (the trainer hook), :mod:`.study` (trials and resume),
:mod:`.report` (table, best TOML, plot), :mod:`.commands` (the CLI verb).
"""

from .pruning import PruningReporter
from .settings import TuneConfig, split_tune_table, tune_config
from .space import Param, format_override, parse_param, parse_params
from .study import TrialFailed, Tuner, TuneResult

__all__ = [
    "Param",
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
