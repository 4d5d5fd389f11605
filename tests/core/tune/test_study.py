# ruff: noqa: E402  (imports that need optuna follow its importorskip)
"""`suite tune` on the plugin template's task: search quality, resume, shared storage."""

from __future__ import annotations

import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

import torch
from optuna.trial import TrialState
from suite_testing import install_fake_distribution
from torchsuite.core.config import load_toml, resolve_config
from torchsuite.core.train import fit
from torchsuite.core.tune import TuneConfig, Tuner
from torchsuite.core.tune import study as study_mod

# Small and quiet: each trial trains for well under a second.
FAST = [
    "data.train_size=256", "data.eval_size=64", "train.max_steps=40", "train.eval_every=10",
    "train.log_every=1000", "optim.warmup_steps=0", "train.checkpoints=false",
    "train.tensorboard=false", "train.progress=off",
]
BAD_LR = "optim.lr=1e-5"  # deliberately bad: 40 steps at this rate barely move the weights
SPACE = {"optim.lr": "loguniform:1e-4:1e-1"}

# `suite tune` through an entry point until core/registry.py lists the module itself.
SHIM = """
from torchsuite.core import registry
if "torchsuite.core.tune.commands" not in registry.CORE_MODULES:
    from torchsuite.core.tune.commands import register_commands  # noqa: F401
"""


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run far faster on one thread than on a contended pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def task_cls(template_site: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(template_site))
    return importlib.import_module("suite_template.task").TemplateRegression


def _tuner(task_cls: Any, tmp: Path, trials: int, **settings: Any) -> Tuner:
    cfg = TuneConfig(trials=trials, seed=0, params=dict(SPACE), **settings)
    return Tuner(task_cls, cfg, overrides=[*FAST, BAD_LR], study_dir=tmp / "study",
                 echo=lambda _: None)


def _run_cli(args: list[str], cwd: Path, site: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "torchsuite.core.cli", "tune", "template-regression", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _cli_site(template_site: Path) -> Path:
    return install_fake_distribution(template_site, "tune-shim", {"tune_shim.py": SHIM},
                                     {"tune-shim": "tune_shim"})


def _wait_for(study_url: str, name: str, ready: Any, proc: subprocess.Popen[str],
              timeout: float = 120) -> None:
    """Poll the shared storage until ``ready(trials)`` (the other process's progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tune process ended early:\n{proc.stdout.read()}")  # type: ignore[union-attr]
        db = Path(study_url.removeprefix("sqlite:///"))
        try:
            trials = optuna.load_study(study_name=name, storage=study_url).get_trials()
            if ready(trials):
                return
        except Exception:  # no database or study yet (the other process is still starting)
            if not db.parent.is_dir():
                time.sleep(0.2)
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the tune process made no progress in time")


def test_tune_beats_a_bad_default_lr_within_10_trials(task_cls: Any, tmp_path: Path) -> None:
    baseline_cfg = resolve_config(task_cls.Config, overrides=[*FAST, BAD_LR])
    baseline = fit(task_cls(baseline_cfg), tmp_path / "baseline").dev_metrics["dev.loss"]

    tuner = _tuner(task_cls, tmp_path, trials=10)
    result = tuner.run()

    assert result.best_value is not None and result.best_value < 0.5 * baseline
    assert result.best_params["optim.lr"] > 1e-4
    finished = result.study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 10
    # each trial is a normal run directory with its config and metrics
    for t in finished:
        run = Path(t.user_attrs["run_dir"])
        assert run.name == f"trial-{t.number:03d}" and (run / "metrics.jsonl").is_file()
        assert load_toml(run / "config.toml")["optim"]["lr"] == t.params["optim.lr"]
    # the best config is a full config `suite train --config` accepts
    best = resolve_config(task_cls.Config, files=[result.files["best_config"]])
    assert best.optim.lr == result.best_params["optim.lr"] and best.train.max_steps == 40
    rows = list(csv.DictReader(result.files["trials"].open()))
    assert [r["state"] for r in rows].count("complete") >= 1 and "optim.lr" in rows[0]
    assert result.files["plot"].stat().st_size > 1000
    summary = json.loads(result.files["summary"].read_text())
    assert summary["best"]["params"] == result.best_params


def test_ctrl_c_requeues_the_interrupted_trial_and_resumes(
    task_cls: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = study_mod.PruningTrainer

    class CtrlCOnTrial2(real):  # type: ignore[misc,valid-type]
        def fit(self) -> Any:
            if self.run_dir.name == "trial-002":
                raise KeyboardInterrupt
            return super().fit()

    monkeypatch.setattr(study_mod, "PruningTrainer", CtrlCOnTrial2)
    with pytest.raises(KeyboardInterrupt):
        _tuner(task_cls, tmp_path, trials=5).run()
    first = {t.number: t for t in _tuner(task_cls, tmp_path, 5).open_study().get_trials()}
    assert [first[n].state for n in sorted(first)] == [
        TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert first[2].user_attrs["interrupted"]
    assert (tmp_path / "study" / "trials.csv").is_file()  # reports of what finished

    monkeypatch.setattr(study_mod, "PruningTrainer", real)
    study = _tuner(task_cls, tmp_path, trials=5).run().study
    trials = {t.number: t for t in study.get_trials()}
    for n in (0, 1):  # finished trials are kept, not re-run
        assert trials[n].value == first[n].value and trials[n].params == first[n].params
    retry = [t for t in trials.values() if t.user_attrs.get("retry_of") == 2]
    assert len(retry) == 1 and retry[0].params == first[2].params
    assert retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 5


def test_a_trial_left_running_by_a_dead_process_is_retried(
    task_cls: Any, tmp_path: Path
) -> None:
    """The in-process half of a kill: a RUNNING trial whose heartbeat stopped."""
    tuner = _tuner(task_cls, tmp_path, trials=3, heartbeat=1)
    study = tuner.open_study()
    done = study.ask({"optim.lr": tuner.params[0].distribution})
    study.tell(done, 1.0)
    dead = study.ask({"optim.lr": tuner.params[0].distribution})
    study._storage.record_heartbeat(dead._trial_id)  # what the killed process last did
    time.sleep(2.2)  # past the grace period (2 x 1 s)

    result = _tuner(task_cls, tmp_path, trials=3, heartbeat=1).run()
    trials = {t.number: t for t in result.study.get_trials()}
    assert trials[dead.number].state == TrialState.FAIL
    retry = [t for t in trials.values() if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].params == {"optim.lr": dead.params["optim.lr"]}
    assert retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert trials[done.number].value == 1.0  # the finished trial is kept as it was
    assert len(result.study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 3


@pytest.mark.slow
def test_killed_study_resumes_from_its_sqlite_file(
    template_site: Path, task_cls: Any, tmp_path: Path
) -> None:
    site = _cli_site(template_site)
    study_dir = tmp_path / "runs" / "template-regression" / "tune"
    url = f"sqlite:///{study_dir / 'study.db'}"
    slow = [a.replace("train.max_steps=40", "train.max_steps=300") for a in FAST]
    proc = _run_cli([*slow, BAD_LR, "--trials", "3", "--param", "optim.lr=loguniform:1e-4:1e-1",
                     "--seed", "1", "--heartbeat", "1"], tmp_path, site)

    def one_done_one_running(trials: list[Any]) -> bool:
        states = [t.state for t in trials]
        return TrialState.COMPLETE in states and states[-1] == TrialState.RUNNING

    _wait_for(url, "tune", one_done_one_running, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = optuna.load_study(study_name="tune", storage=url).get_trials()
    killed = before[-1]
    assert killed.state == TrialState.RUNNING  # nobody could mark it: the process is gone
    time.sleep(2.5)  # past the heartbeat grace period (2 x 1 s)

    cfg = TuneConfig(trials=3, heartbeat=1, params=dict(SPACE))
    tuner = Tuner(task_cls, cfg, overrides=[*slow, BAD_LR], study_dir=study_dir,
                  echo=lambda _: None)
    study = tuner.run().study
    trials = {t.number: t for t in study.get_trials()}
    assert trials[killed.number].state == TrialState.FAIL  # declared dead by its heartbeat
    retried = [t for t in trials.values() if t.number > killed.number
               and t.params == killed.params]
    assert retried and retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    for t in before:
        if t.state == TrialState.COMPLETE:
            assert trials[t.number].value == t.value
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 3


@pytest.mark.slow
def test_two_processes_sharing_a_storage_run_disjoint_trials(
    template_site: Path, task_cls: Any, tmp_path: Path
) -> None:
    site = _cli_site(template_site)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # process A: the CLI, with its search described in a [tune] table
    (tmp_path / "search.toml").write_text(
        '[train]\nmax_steps = 150\n[tune]\ntrials = 8\nstudy = "shared"\nseed = 1\n'
        f'storage = "{url}"\n[tune.params]\n"optim.lr" = "loguniform:1e-4:1e-1"\n'
    )
    overrides = [a for a in FAST if not a.startswith("train.max_steps")]
    proc = _run_cli([*overrides, BAD_LR, "--config", "search.toml"], tmp_path, site)
    _wait_for(url, "shared", lambda trials: len(trials) >= 1, proc)

    # process B: this one, joining the same study with the same search
    cfg = TuneConfig(trials=8, seed=2, study="shared", storage=url, params=dict(SPACE))
    tuner = Tuner(task_cls, cfg, overrides=["train.max_steps=150", *overrides, BAD_LR],
                  study_dir=tmp_path / "runs" / "template-regression" / "shared",
                  echo=lambda _: None)
    tuner.run()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "best dev.loss" in out and "best.toml" in out

    trials = optuna.load_study(study_name="shared", storage=url).get_trials()
    workers: dict[str, list[int]] = {}
    for t in trials:
        workers.setdefault(t.user_attrs["worker"].split(":")[1], []).append(t.number)
    assert len(workers) == 2, workers  # both processes ran trials ...
    me = workers.pop(str(os.getpid()))
    assert not set(me) & set(next(iter(workers.values())))  # ... and never the same one
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    # one run directory per trial, each written by exactly that trial
    for t in trials:
        record = json.loads((Path(t.user_attrs["run_dir"]) / "trial.json").read_text())
        assert record["number"] == t.number and record["params"] == t.params
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 8 <= len(finished) <= 9  # both stop at the target (each may finish its last trial)
