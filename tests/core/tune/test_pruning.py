# ruff: noqa: E402  (imports that need optuna follow its importorskip)
"""Intermediate dev metrics reach Optuna, and a pruned run stops where it was judged."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from torchsuite.core.config import resolve_config
from torchsuite.core.train.logs import read_metrics
from torchsuite.core.tune import PruningReporter, TuneConfig, Tuner
from torchsuite.core.tune.pruning import PruningTrainer


class _Always(optuna.pruners.BasePruner):
    def prune(self, study: Any, trial: Any) -> bool:
        return True


def _median_study() -> Any:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for _ in range(2):
        t = study.ask()
        t.report(1.0, 1)
        t.report(1.0, 2)
        study.tell(t, 1.0)
    return study


def test_reporter_prunes_a_trial_worse_than_the_median() -> None:
    study = _median_study()
    good = PruningReporter(study.ask(), "dev.loss")
    good.on_evaluate(1, {"dev.loss": 0.5, "dev.mse": 9.0})  # better than the median: goes on
    good.on_evaluate(2, {"dev.mse": 9.0})  # not the tuned metric: ignored
    assert good.values == [0.5]
    trial = study.ask()
    bad = PruningReporter(trial, "dev.loss")
    with pytest.raises(optuna.TrialPruned, match=r"dev\.loss=5 at evaluation 1"):
        bad.on_evaluate(1, {"dev.loss": 5.0})
    assert bad.last == 5.0
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {1: 5.0}


def test_reporter_never_prunes_the_final_evaluation_and_always_prunes_nan() -> None:
    trial = _median_study().ask()
    PruningReporter(trial, "dev.loss").on_evaluate(2, {"dev.loss": 5.0}, final=True)
    with pytest.raises(optuna.TrialPruned, match="nan"):
        PruningReporter(_median_study().ask(), "dev.loss").on_evaluate(1, {"dev.loss": math.nan})


def test_a_pruned_run_stops_at_the_evaluation_and_logs_it(
    task_cls: Any, fast: list[str], tmp_path: Path
) -> None:
    cfg = resolve_config(task_cls.Config, overrides=fast)
    study = optuna.create_study(pruner=_Always())
    trial = study.ask()
    trainer = PruningTrainer(task_cls(cfg), tmp_path / "run", PruningReporter(trial, "dev.loss"))
    with pytest.raises(optuna.TrialPruned):
        trainer.fit()
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert max(r["step"] for r in records) == 10  # eval_every=10 of max_steps=40
    last = records[-1]
    assert last["event"] == "pruned" and last["step"] == 10 and last["dev.loss"] > 0
    assert list(trial.storage.get_trial(trial._trial_id).intermediate_values) == [1]

    # a resumed run numbers its evaluations after the ones its checkpoint had made (the
    # pruning callback's count travels in the checkpoint) and logs the real step
    keep = [*fast, "train.checkpoints=true"]
    first = optuna.create_study(pruner=optuna.pruners.NopPruner()).ask()
    PruningTrainer(task_cls(resolve_config(task_cls.Config, overrides=[*keep,
                                                                      "train.max_steps=20"])),
                   tmp_path / "run2", PruningReporter(first, "dev.loss")).fit()
    trial = study.ask()
    trainer = PruningTrainer(task_cls(resolve_config(task_cls.Config, overrides=keep)),
                             tmp_path / "run2", PruningReporter(trial, "dev.loss"),
                             resume_from=tmp_path / "run2")
    with pytest.raises(optuna.TrialPruned):
        trainer.fit()
    assert list(trial.storage.get_trial(trial._trial_id).intermediate_values) == [3]
    last = read_metrics(tmp_path / "run2" / "metrics.jsonl")[-1]
    assert last["step"] == 30 and last["event"] == "pruned"

    # a checkpoint without that count (or none): evaluations_done supplies it
    trial = study.ask()
    trainer = PruningTrainer(task_cls(cfg), tmp_path / "run3", PruningReporter(trial, "dev.loss"),
                             evaluations_done=2)
    with pytest.raises(optuna.TrialPruned):
        trainer.fit()
    assert list(trial.storage.get_trial(trial._trial_id).intermediate_values) == [3]
    assert read_metrics(tmp_path / "run3" / "metrics.jsonl")[-1]["step"] == 10


@pytest.mark.parametrize(
    ("name", "cls"),
    [("median", "MedianPruner"), ("successive-halving", "SuccessiveHalvingPruner"),
     ("hyperband", "HyperbandPruner"), ("none", "NopPruner")],
)
def test_each_pruner_setting_picks_its_optuna_pruner(
    task_cls: Any, tmp_path: Path, name: str, cls: str
) -> None:
    cfg = TuneConfig(pruner=name, params={"optim.lr": "loguniform:1e-4:1e-1"})
    tuner = Tuner(task_cls, cfg, study_dir=tmp_path, echo=lambda _: None)
    assert type(tuner._pruner()).__name__ == cls
