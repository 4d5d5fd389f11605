# ruff: noqa: E402  (imports that need optuna follow its importorskip)
"""Tuner on the plugin template's task: search quality, Ctrl-C, dead processes, shared storage."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState
from suite_testing import install_fake_distribution
from torchsuite.core.config import load_toml, resolve_config
from torchsuite.core.errors import SuiteError
from torchsuite.core.train import fit
from torchsuite.core.train.logs import read_metrics
from torchsuite.core.tune import TuneConfig, Tuner

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
CHILD = Path(__file__).with_name("tune_child.py")

# `suite tune` through an entry point until core/registry.py lists the module itself.
SHIM = """
from torchsuite.core import registry
if "torchsuite.core.tune.commands" not in registry.CORE_MODULES:
    from torchsuite.core.tune.commands import register_commands  # noqa: F401
"""


def _steps(run_dir: Path) -> list[int]:
    """Optimizer steps that logged a dev evaluation."""
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if "dev.loss" in r]


def test_tune_beats_a_bad_default_lr_within_10_trials(
    task_cls: Any, make_tuner: Any, fast: list[str], tmp_path: Path
) -> None:
    baseline_cfg = resolve_config(task_cls.Config, overrides=fast)
    baseline = fit(task_cls(baseline_cfg), tmp_path / "baseline").dev_metrics["dev.loss"]

    result = make_tuner(tmp_path / "study", trials=10).run()

    assert result.best_value is not None and result.best_value < 0.5 * baseline
    assert result.best_params["optim.lr"] > 1e-4
    finished = result.study.get_trials(states=FINISHED)
    assert len(finished) == 10
    # each trial is a normal run directory with its config and metrics
    for t in finished:
        run = Path(t.user_attrs["run_dir"])
        assert run.name == f"trial-{t.number:03d}" and (run / "metrics.jsonl").is_file()
        assert load_toml(run / "config.toml")["optim"]["lr"] == t.params["optim.lr"]
        assert json.loads((run / "trial.json").read_text())["state"] == t.state.name.lower()
    # the median pruner stopped some bad trials at an intermediate evaluation
    pruned = [t for t in finished if t.state == TrialState.PRUNED]
    assert pruned
    for t in pruned:
        assert max(_steps(Path(t.user_attrs["run_dir"]))) < 40
        assert sorted(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1))
    # the best config is a full config `suite train --config` accepts
    best = resolve_config(task_cls.Config, files=[result.files["best_config"]])
    assert best.optim.lr == result.best_params["optim.lr"] and best.train.max_steps == 40
    rows = list(csv.DictReader(result.files["trials"].open()))
    assert len(rows) == 10 and {r["state"] for r in rows} == {"complete", "pruned"}
    best_row = next(r for r in rows if r["trial"] == str(result.study.best_trial.number))
    assert float(best_row["dev.loss"]) == pytest.approx(result.best_value)
    assert result.files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(result.files["summary"].read_text())
    assert summary["best"]["params"] == result.best_params
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 10
    assert set(summary["importances"]) == {"optim.lr"}


def test_ctrl_c_stops_the_trial_and_the_rerun_continues_it(
    task_cls: Any, make_tuner: Any, fast: list[str], tmp_path: Path
) -> None:
    """A real SIGINT in the third trial: the trainer saves and stops, the study stops, and
    the same command run again continues that trial's run from its checkpoint."""
    started: list[int] = []

    class CtrlCInThirdTrial(task_cls):  # type: ignore[misc,valid-type]
        def __init__(self, cfg: Any) -> None:
            super().__init__(cfg)
            started.append(0)
            self.steps = 0

        def training_step(self, model: Any, batch: Any) -> Any:
            self.steps += model.training  # validation_step also lands here, in eval mode
            if len(started) == 3 and self.steps == 25:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C on a terminal sends
            return super().training_step(model, batch)

    overrides = [a for a in fast if a != "train.checkpoints=false"]
    study_dir = tmp_path / "study"
    with pytest.raises(KeyboardInterrupt):
        make_tuner(study_dir, 4, task=CtrlCInThirdTrial, overrides=overrides).run()
    first = {t.number: t for t in make_tuner(study_dir, 4).open_study().get_trials()}
    assert [first[n].state for n in sorted(first)] == [
        TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert first[2].user_attrs["interrupted"]
    run2 = study_dir / "trial-002"
    assert (run2 / "checkpoints" / "step-25.pt").is_file()  # the trainer saved on SIGINT
    assert (study_dir / "trials.csv").is_file()  # reports of what finished

    study = make_tuner(study_dir, 4, overrides=overrides).run().study
    trials = {t.number: t for t in study.get_trials()}
    for n in (0, 1):  # finished trials are kept, not re-run
        assert trials[n].value == first[n].value and trials[n].params == first[n].params
    retry = [t for t in trials.values() if t.user_attrs.get("retry_of") == 2]
    assert len(retry) == 1 and retry[0].params == first[2].params
    assert retry[0].state in FINISHED
    # ... continued in trial-002 from step 25, its evaluations numbered after the first two
    assert retry[0].user_attrs["run_dir"] == str(run2)
    records = read_metrics(run2 / "metrics.jsonl")
    assert any(r.get("event") == "resumed" and r["step"] == 25 for r in records)
    assert min(retry[0].intermediate_values) == 3
    assert len(study.get_trials(states=FINISHED)) == 4


def _tune_process(tmp_path: Path, template_site: Path, name: str, study_dir: Path,
                  trials: int, overrides: list[str], space: dict[str, str],
                  **settings: Any) -> subprocess.Popen[bytes]:
    """Start ``tune_child.py`` (a fresh interpreter) with the make_tuner defaults."""
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({
        "template_site": str(template_site), "study_dir": str(study_dir), "trials": trials,
        "overrides": overrides, "settings": {"seed": 0, "params": space, **settings},
    }))
    return subprocess.Popen([sys.executable, str(CHILD), str(spec)], cwd=tmp_path)


def test_a_killed_study_resumes_from_its_sqlite_file(
    make_tuner: Any, fast: list[str], tmp_path: Path, template_site: Path,
    tune_space: dict[str, str],
) -> None:
    """SIGKILL a tuning process mid-trial; the next run continues that trial's run from its
    last checkpoint and keeps what finished."""
    overrides = [a for a in fast if a != "train.checkpoints=false"]
    overrides = [a.replace("train.max_steps=40", "train.max_steps=120")
                 .replace("train.eval_every=10", "train.eval_every=30") for a in overrides]
    study_dir = tmp_path / "study"
    child = _tune_process(tmp_path, template_site, "child", study_dir, 2, overrides,
                          tune_space)
    deadline = time.monotonic() + 180
    while not list((study_dir / "trial-001" / "checkpoints").glob("step-*.pt")):
        assert child.poll() is None and time.monotonic() < deadline, "no checkpoint of trial 1"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)  # no handler runs: nothing is marked or saved
    child.wait()
    before = {t.number: t for t in make_tuner(study_dir, 2).open_study().get_trials()}
    assert before[0].state == TrialState.COMPLETE
    assert before[1].state == TrialState.RUNNING  # left behind by the dead process

    result = make_tuner(study_dir, 2, overrides=overrides).run()  # at once: no grace period
    trials = {t.number: t for t in result.study.get_trials()}
    assert trials[0].value == before[0].value  # kept, not re-run
    assert trials[1].state == TrialState.FAIL and "is gone" in trials[1].user_attrs["interrupted"]
    (retry,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == 1]
    assert retry.params == before[1].params and retry.state in FINISHED
    run1 = study_dir / "trial-001"
    assert retry.user_attrs["run_dir"] == str(run1)  # continued in place ...
    resumed = [r for r in read_metrics(run1 / "metrics.jsonl") if r.get("event") == "resumed"]
    assert len(resumed) == 1 and resumed[0]["step"] >= 30  # ... from its checkpoint
    assert len(result.study.get_trials(states=FINISHED)) == 2


def test_a_retried_trial_whose_run_had_finished_is_not_trained_again(
    task_cls: Any, make_tuner: Any, fast: list[str], tmp_path: Path
) -> None:
    """Killed between the run's last checkpoint and telling Optuna: the logged result counts."""
    overrides = [a for a in fast if a != "train.checkpoints=false"]
    tuner = make_tuner(tmp_path / "study", 1, overrides=overrides)
    study = tuner.open_study()
    run = tmp_path / "study" / "trial-000"
    lr = 0.01
    dev = fit(task_cls(tuner.config_for({"optim.lr": lr})), run).dev_metrics["dev.loss"]
    study.enqueue_trial({"optim.lr": lr}, user_attrs={"retry_of": 0, "run_dir": str(run)})
    before = (run / "metrics.jsonl").read_text()

    result = make_tuner(tmp_path / "study", 1, overrides=overrides).run()
    assert result.best_value == dev and result.best_params == {"optim.lr": lr}
    assert (run / "metrics.jsonl").read_text() == before  # nothing trained or logged again


@pytest.mark.slow  # waits out a heartbeat grace period
def test_a_trial_left_running_by_a_dead_process_is_retried(
    make_tuner: Any, tmp_path: Path
) -> None:
    """A trial of a process on another machine (no local PID to check): its heartbeat."""
    tuner = make_tuner(tmp_path / "study", 2, heartbeat=1)
    study = tuner.open_study()
    space = {"optim.lr": tuner.params[0].distribution}
    with warnings.catch_warnings():  # "heartbeats are meant for Study.optimize": we fake one
        warnings.simplefilter("ignore", UserWarning)
        done = study.ask(space)
        study.tell(done, 1.0)
        dead = study.ask(space)
    study._storage.record_heartbeat(dead._trial_id)  # what the killed process last did
    time.sleep(3.1)  # past the grace period (2 x 1 s; SQLite keeps whole seconds)

    result = make_tuner(tmp_path / "study", 2, heartbeat=1).run()
    trials = {t.number: t for t in result.study.get_trials()}
    assert trials[dead.number].state == TrialState.FAIL
    retry = [t for t in trials.values() if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].params == {"optim.lr": dead.params["optim.lr"]}
    assert retry[0].state in FINISHED
    assert trials[done.number].value == 1.0  # the finished trial is kept as it was
    assert len(result.study.get_trials(states=FINISHED)) == 2


def test_two_processes_sharing_one_storage_run_disjoint_trials(
    make_tuner: Any, fast: list[str], tmp_path: Path, template_site: Path,
    tune_space: dict[str, str],
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study_dir = tmp_path / "study"
    make_tuner(study_dir, 4, storage=url, study="shared").open_study()  # created once
    procs = [_tune_process(tmp_path, template_site, f"worker{seed}", study_dir, 4, fast,
                           tune_space, seed=seed, storage=url, study="shared")
             for seed in (1, 2)]
    for p in procs:
        assert p.wait(300) == 0

    trials = optuna.load_study(study_name="shared", storage=url).get_trials()
    workers: dict[str, set[int]] = {}
    for t in trials:
        workers.setdefault(t.user_attrs["worker"], set()).add(t.number)
    assert sorted(int(w.split(":")[1]) for w in workers) == sorted(p.pid for p in procs)
    first, second = workers.values()
    assert first and second and not first & second  # both ran trials, never the same one
    for t in trials:  # one run directory per trial, each written by exactly that trial
        record = json.loads((Path(t.user_attrs["run_dir"]) / "trial.json").read_text())
        assert record["number"] == t.number and record["params"] == t.params
    finished = [t for t in trials if t.state in FINISHED]
    assert 4 <= len(finished) <= 5  # both stop at the target (each may finish its last trial)


def test_a_new_study_never_writes_over_runs_of_an_old_one(
    make_tuner: Any, tmp_path: Path
) -> None:
    study_dir = tmp_path / "study"
    (study_dir / "trial-000").mkdir(parents=True)
    (study_dir / "trial-000" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(SuiteError, match="earlier search"):
        make_tuner(study_dir, 2).run()
    assert (study_dir / "trial-000" / "metrics.jsonl").read_text() == "{}\n"


def test_resuming_with_a_different_search_is_refused(make_tuner: Any, tmp_path: Path) -> None:
    make_tuner(tmp_path / "s", 1).open_study()
    changed = make_tuner(tmp_path / "s", 1, params={"optim.lr": "loguniform:1e-3:1e-1"})
    with pytest.raises(SuiteError, match=r"different search.*--study NEW_NAME"):
        changed.open_study()
    with pytest.raises(SuiteError, match="different search"):
        make_tuner(tmp_path / "s", 1, direction="max").open_study()


# ----------------------------------------------------------------- real processes (slow)
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
        try:
            trials = optuna.load_study(study_name=name, storage=study_url).get_trials()
            if ready(trials):
                return
        except Exception:  # no database or study yet (the other process is still starting)
            time.sleep(0.2)
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the tune process made no progress in time")


@pytest.mark.slow
def test_killed_cli_study_resumes_from_its_sqlite_file(
    template_site: Path, task_cls: Any, fast: list[str], tmp_path: Path
) -> None:
    site = _cli_site(template_site)
    study_dir = tmp_path / "runs" / "template-regression" / "tune"
    url = f"sqlite:///{study_dir / 'study.db'}"
    slow = [a.replace("train.max_steps=40", "train.max_steps=300") for a in fast]
    proc = _run_cli([*slow, "--trials", "3", "--param", "optim.lr=loguniform:1e-4:1e-1",
                     "--seed", "1", "--heartbeat", "1"], tmp_path, site)

    def one_done_one_running(trials: list[Any]) -> bool:
        # Running in the worker, not only created: Optuna marks a trial RUNNING before
        # the objective has said which process runs it.
        states = [t.state for t in trials]
        return (TrialState.COMPLETE in states and states[-1] == TrialState.RUNNING
                and "worker" in trials[-1].user_attrs)

    _wait_for(url, "tune", one_done_one_running, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = optuna.load_study(study_name="tune", storage=url).get_trials()
    killed = before[-1]
    assert killed.state == TrialState.RUNNING  # nobody could mark it: the process is gone

    cfg = TuneConfig(trials=3, heartbeat=1, params={"optim.lr": "loguniform:1e-4:1e-1"})
    tuner = Tuner(task_cls, cfg, overrides=slow, study_dir=study_dir, echo=lambda _: None)
    study = tuner.run().study
    trials = {t.number: t for t in study.get_trials()}
    assert trials[killed.number].state == TrialState.FAIL  # its PID is gone: declared dead
    retried = [t for t in trials.values() if t.number > killed.number
               and t.params == killed.params]
    assert retried and retried[0].state in FINISHED
    for t in before:
        if t.state == TrialState.COMPLETE:
            assert trials[t.number].value == t.value
    assert len(study.get_trials(states=FINISHED)) == 3


@pytest.mark.slow
def test_cli_and_python_processes_share_a_study(
    template_site: Path, task_cls: Any, fast: list[str], tmp_path: Path
) -> None:
    site = _cli_site(template_site)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # process A: the CLI, with its search described in a [tune] table
    (tmp_path / "search.toml").write_text(
        '[train]\nmax_steps = 150\n[tune]\ntrials = 8\nstudy = "shared"\nseed = 1\n'
        f'storage = "{url}"\n[tune.params]\n"optim.lr" = "loguniform:1e-4:1e-1"\n'
    )
    overrides = [a for a in fast if not a.startswith("train.max_steps")]
    proc = _run_cli([*overrides, "--config", "search.toml"], tmp_path, site)
    _wait_for(url, "shared", lambda trials: len(trials) >= 1, proc)

    # process B: this one, joining the same study with the same search
    cfg = TuneConfig(trials=8, seed=2, study="shared", storage=url,
                     params={"optim.lr": "loguniform:1e-4:1e-1"})
    tuner = Tuner(task_cls, cfg, overrides=["train.max_steps=150", *overrides],
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
    for t in trials:
        record = json.loads((Path(t.user_attrs["run_dir"]) / "trial.json").read_text())
        assert record["number"] == t.number and record["params"] == t.params
    finished = [t for t in trials if t.state in FINISHED]
    assert 8 <= len(finished) <= 9
