"""Running a study: one Optuna trial = one normal training run directory.

::

    runs/<task>/<study>/
        study.db            the Optuna study (SQLite) unless --storage names another database
        trial-000/ ...      one run directory per trial (config.toml, metrics.jsonl, checkpoints/)
        trials.csv          number, state, metric, params, run directory
        best.toml           the best trial's full config: `suite train TASK --config best.toml`
        tune.png            metric vs trial, and parameter importances
        summary.json        best value/params, counts per state

Interrupting (Ctrl-C) marks the running trial failed and queues its parameters
again, so re-running the same command resumes the study. A process killed
outright leaves its trial "running": the next run on the same machine sees that
the trial's process is gone and re-queues it at once; a trial of a process on
another machine stops sending heartbeats, and the next process to start a trial
after the grace period (2 x ``heartbeat``) fails and re-queues it. A
re-queued trial continues the interrupted run directory from its last
checkpoint when it has one (``train.checkpoints``) and starts afresh otherwise. Several
processes (or machines) given the same ``--storage``/``--study`` draw disjoint
trials from it, and together stop at ``trials`` finished ones.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from ..config import resolve_config, to_dict
from ..errors import ConfigError, DataError, SuiteError
from ..runs import RUNS_ROOT, create_run_dir, write_run_config
from ..task import Task
from ..train.checkpoint import step_checkpoints
from ..train.logs import read_metrics
from ..train.trainer import TrainingDiverged, fit
from .pruning import PruningCallback, PruningReporter
from .report import write_reports
from .settings import TuneConfig
from .space import Param, format_override, parse_params

__all__ = ["TrialFailed", "TuneResult", "Tuner"]

#: Trials counted towards ``--trials``: a pruned trial is a finished, judged trial.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Stop this process after this many failed trials in a row (a broken config, not bad luck).
MAX_CONSECUTIVE_FAILURES = 5
_ATTR = "torchsuite"


class TrialFailed(Exception):
    """A trial that could not produce its metric; the study goes on without it."""


@dataclass
class TuneResult:
    """What a study run left behind."""

    study: optuna.Study
    study_dir: Path
    best_value: float | None
    best_params: dict[str, Any]
    files: dict[str, Path]


class Tuner:
    """Search ``params`` of a task's config with Optuna, training one run per trial.

    Args:
        task_cls: The task class (its ``Config`` is resolved per trial).
        settings: The ``[tune]`` settings (trials, metric, direction, space, ...).
        base: Config tree from the user's files (``[tune]`` removed) applied under overrides.
        overrides: The user's ``key=value`` overrides; tuned keys are applied after them.
        study_dir: Where trial runs and reports go (default ``runs/<task>/<study>``).
        echo: Where progress lines go.
    """

    def __init__(
        self,
        task_cls: type[Task[Any]],
        settings: TuneConfig,
        *,
        base: dict[str, Any] | None = None,
        overrides: Sequence[str] = (),
        study_dir: Path | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.task_cls = task_cls
        self.settings = settings
        self.base = base or {}
        self.overrides = list(overrides)
        # absolute, so the run directories recorded in a shared storage mean the same
        # thing to every process reading it, whatever its working directory
        self.study_dir = Path(study_dir or RUNS_ROOT / task_cls.name / settings.study).resolve()
        self.echo = echo
        self.params: list[Param] = parse_params(settings.params, task_cls.Config)
        self._failures_in_a_row = 0

    # ------------------------------------------------------------------ setup
    def config_for(self, values: dict[str, Any]) -> Any:
        """The task config of a trial: files <- user overrides <- tuned values."""
        tuned = [format_override(k, v) for k, v in values.items()]
        return resolve_config(
            self.task_cls.Config, overrides=[*self.overrides, *tuned], base=self.base
        )

    def check_space(self) -> None:
        """Resolve the config at every bound/choice so a bad range fails before any training."""
        self.config_for({})
        for p in self.params:
            for value in p.boundary_values():
                try:
                    self.config_for({p.key: value})
                except ConfigError as exc:
                    raise ConfigError(f"--param {p.key}={p.spec}: value {value!r} is refused: "
                                      f"{exc}") from None

    def storage(self) -> optuna.storages.BaseStorage | str:
        """The storage for the configured URL (SQLite in the study dir by default)."""
        url = self.settings.storage or f"sqlite:///{(self.study_dir / 'study.db').resolve()}"
        if "://" not in url:
            raise ConfigError(
                f"storage '{url}' is not a database URL; use e.g. sqlite:///path/study.db or "
                f"postgresql://user@host/db."
            )
        if url.split(":", 1)[0].split("+")[0] not in ("sqlite", "postgresql", "mysql", "oracle",
                                                      "mssql"):
            return url  # let Optuna interpret other URLs (e.g. a gRPC proxy)
        retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
            optuna.storages.RetryFailedTrialCallback
        hb = self.settings.heartbeat
        kwargs: dict[str, Any] = {"heartbeat_interval": hb, "grace_period": 2 * hb}
        # the keyword was renamed in optuna 4.9
        name = "heartbeat_stale_trial_callback" if hasattr(
            optuna.storages, "RetryHeartbeatStaleTrialCallback") else "failed_trial_callback"
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                kwargs[name] = retry_cls(max_retry=2)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)
        except Exception as exc:  # sqlalchemy raises many types for bad URLs / unreachable hosts
            raise SuiteError(
                f"cannot open the study storage '{url}': {type(exc).__name__}: {exc}. "
                f"Check the --storage URL (and that its database driver is installed)."
            ) from None

    def _sampler(self) -> optuna.samplers.BaseSampler:
        seed = self.settings.seed
        if self.settings.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        # a few random trials before TPE models the space; at most a third of the budget
        startup = max(3, min(10, self.settings.trials // 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)

    def _pruner(self) -> optuna.pruners.BasePruner:
        name = self.settings.pruner
        if name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
        if name == "successive-halving":
            # rungs at evaluations 1, 3, 9, ...: a third of the trials go on at each rung
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        if name == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
        return optuna.pruners.NopPruner()

    def _spec(self) -> dict[str, Any]:
        return {
            "task": self.task_cls.name,
            "metric": self.settings.metric,
            "direction": self.settings.direction,
            "params": {p.key: p.spec for p in self.params},
        }

    def open_study(self) -> optuna.Study:
        """Create the study or join/resume the existing one (refusing a different search)."""
        self.study_dir.mkdir(parents=True, exist_ok=True)
        direction = "minimize" if self.settings.direction == "min" else "maximize"
        study = optuna.create_study(
            storage=self.storage(),
            study_name=self.settings.study,
            direction=direction,
            sampler=self._sampler(),
            pruner=self._pruner(),
            load_if_exists=True,
        )
        spec = self._spec()
        saved = study.user_attrs.get(_ATTR)
        if saved is None:
            study.set_user_attr(_ATTR, spec)
        elif saved != spec or study.direction.name.lower() != direction:
            raise SuiteError(
                f"study '{self.settings.study}' in {self.settings.storage or self.study_dir} was "
                f"started with a different search ({json.dumps(saved)}); this command asks for "
                f"{json.dumps(spec)}. Re-run with the original settings to resume it, or pass "
                f"--study NEW_NAME for a new study."
            )
        return study

    def _fail_dead_local_trials(self, study: optuna.Study) -> None:
        """Fail the running trials of processes on this machine that no longer exist.

        A process killed outright (SIGKILL, a crash, a closed laptop) leaves its trial
        RUNNING. Heartbeats catch that too, but only a grace period later; a trial whose
        worker ran on this host under a PID that is gone is known dead now, so re-running
        the command right away continues it. Trials of other machines are left to their
        heartbeats.
        """
        host = socket.gethostname()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
            if worker_host != host or not pid.isdigit() or _alive(int(pid)):
                continue
            try:
                study._storage.set_trial_user_attr(
                    t._trial_id, "interrupted", f"process {pid} on {host} is gone")
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another process got there first
            self.echo(f"trial {t.number} was left running by process {pid}, which is gone")

    def _requeue_interrupted(self, study: optuna.Study) -> None:
        """Queue again the parameters of trials stopped by Ctrl-C or a dead process
        (once each)."""
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and \
                    t.number not in retried:
                attrs = {"retry_of": t.number, "run_dir": t.user_attrs.get("run_dir", "")}
                study.enqueue_trial(t.params, user_attrs=attrs)
                self.echo(f"trial {t.number} was interrupted; its parameters are queued again")

    def _check_leftovers(self, study: optuna.Study) -> None:
        """Refuse to start a new study over trial runs of an earlier one (never overwrite)."""
        if study.get_trials(deepcopy=False):
            return
        old = sorted(p.name for p in self.study_dir.glob("trial-*") if p.is_dir())
        if old:
            raise SuiteError(
                f"study '{self.settings.study}' has no trials in its storage, but "
                f"{self.study_dir} already holds runs of an earlier search ({', '.join(old[:3])}"
                f"{', ...' if len(old) > 3 else ''}). Pass --study NEW_NAME (or --study-dir) "
                f"for a new search, or --storage with the database that study used."
            )

    # ------------------------------------------------------------------ trials
    def _resumable(self, trial: optuna.Trial, cfg: Any) -> tuple[Path, int] | None:
        """(run dir, its last checkpoint step) when ``trial`` retries an interrupted run
        with the same config that left a checkpoint; ``None`` otherwise."""
        previous = trial.user_attrs.get("run_dir")  # set on re-queued / heartbeat-retried trials
        if not previous:
            return None
        run_dir = Path(previous)
        steps = step_checkpoints(run_dir)
        if not steps or not (run_dir / "config.toml").is_file():
            return None
        try:  # resolved again so defaults that TOML cannot spell (None) compare equal
            saved = resolve_config(self.task_cls.Config, files=[run_dir / "config.toml"])
        except SuiteError:
            return None
        if _plain(to_dict(saved)) != _plain(to_dict(cfg)):
            return None  # the base config changed since: a fresh run is the honest choice
        return run_dir, steps[-1][0]

    def objective(self, trial: optuna.Trial) -> float:
        """Train one run with the trial's parameters and return its metric."""
        # First of all: a process killed from here on leaves a trial it can be told by.
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        values = {p.key: p.suggest(trial) for p in self.params}
        try:
            cfg = self.config_for(values)
        except ConfigError as exc:
            trial.set_user_attr("error", f"ConfigError: {exc}")
            raise TrialFailed(str(exc)) from exc
        resume = self._resumable(trial, cfg)
        run_dir = resume[0] if resume else self.study_dir / f"trial-{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        how = f"continues {run_dir} from step {resume[1]}" if resume else f"-> {run_dir}"
        self.echo(f"trial {trial.number}: {shown} {how}")
        if resume and resume[1] >= cfg.train.max_steps:
            # killed after its last checkpoint but before Optuna heard the result
            value = _logged_metric(run_dir, self.settings.metric, resume[1])
            if value is not None:
                self.echo(f"trial {trial.number}: its run had finished training; "
                          f"{self.settings.metric}={value:.6g} from {run_dir / 'metrics.jsonl'}")
                return value
        try:
            if resume is None:
                create_run_dir(self.task_cls.name, run_dir=run_dir)
                write_run_config(run_dir, cfg, self.task_cls.name)
            task = self.task_cls(cfg)
            reporter = PruningReporter(trial, self.settings.metric)
            every = cfg.train.eval_every
            # the public callback hook: each dev evaluation goes to Optuna (the evaluation
            # count is also kept in the trial's checkpoints; this covers older ones)
            pruning = PruningCallback(
                reporter, evaluations_done=resume[1] // every if resume and every > 0 else 0)
            result = fit(task, run_dir, resume_from=run_dir if resume else None,
                         callbacks=[pruning])
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except (optuna.TrialPruned, DataError):
            raise
        except TrainingDiverged as exc:
            # Pruned, not failed: the sampler then learns that this region is bad (failed
            # trials are invisible to TPE), and the trial counts as judged.
            trial.set_user_attr("error", f"diverged: {str(exc).split(';')[0][:200]}")
            raise optuna.TrialPruned("training diverged") from exc
        except (SuiteError, torch.OutOfMemoryError) as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise TrialFailed(str(exc)) from exc
        if getattr(result, "interrupted", False):  # a trainer that saved and returned on SIGINT
            trial.set_user_attr("interrupted", True)
            raise KeyboardInterrupt
        dev = dict(getattr(result, "dev_metrics", {}) or {})
        value = dev.get(self.settings.metric, reporter.last)
        if value is None:
            known = ", ".join(sorted(dev)) or "none"
            raise SuiteError(
                f"training of trial {trial.number} did not report '{self.settings.metric}' "
                f"(dev metrics it reported: {known}). Pick one of them with --metric, and make "
                f"sure the task has a dev split."
            )
        return float(value)

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Progress line, trial.json in the run directory, and the stop rules."""
        value = trial.value if trial.state == TrialState.COMPLETE else None
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        default_dir = self.study_dir / f"trial-{trial.number:03d}"
        run_dir = Path(trial.user_attrs.get("run_dir", default_dir))
        if run_dir.is_dir():
            record = {"number": trial.number, "state": trial.state.name.lower(),
                      "params": trial.params, self.settings.metric: value,
                      "error": trial.user_attrs.get("error")}
            (run_dir / "trial.json").write_text(json.dumps(record, indent=2) + "\n")
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        shown = "" if value is None else f" {self.settings.metric}={value:.6g}"
        error = trial.user_attrs.get("error", "")
        self.echo(f"trial {trial.number} {trial.state.name.lower()}{shown}"
                  f"{' (' + error + ')' if error else ''} "
                  f"[{finished}/{self.settings.trials} finished]")
        if trial.state == TrialState.FAIL:
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                self.echo(f"stopping: {MAX_CONSECUTIVE_FAILURES} trials in a row failed "
                          f"(last: {error or 'see above'}).")
                study.stop()
        else:
            self._failures_in_a_row = 0
        if finished >= self.settings.trials:
            study.stop()

    # ------------------------------------------------------------------ run
    def run(self) -> TuneResult:
        """Run (or resume / join) the study until it has ``trials`` finished trials.

        Raises:
            KeyboardInterrupt: After writing the reports of what finished, on Ctrl-C.
        """
        # each trial's outcome (and error) is printed by _after_trial; Optuna's own warnings
        # would repeat it with a traceback, even for a Ctrl-C
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        with warnings.catch_warnings():
            # heartbeats, enqueue_trial and the importance plot are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return self._run()

    def _run(self) -> TuneResult:
        self.check_space()
        study = self.open_study()
        self._check_leftovers(study)
        self._fail_dead_local_trials(study)
        self._requeue_interrupted(study)
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        where = self.settings.storage or self.study_dir / "study.db"
        if finished >= self.settings.trials:
            self.echo(f"study '{self.settings.study}' already has {finished} finished trials "
                      f"(--trials {self.settings.trials}); raise --trials to run more.")
        else:
            self.echo(f"study '{self.settings.study}' ({where}): {finished} finished, "
                      f"running until {self.settings.trials}")
            try:
                study.optimize(
                    self.objective,
                    timeout=self.settings.timeout or None,
                    callbacks=[self._after_trial],
                    catch=(TrialFailed,),
                )
            except KeyboardInterrupt:
                files = write_reports(study, self, echo=self.echo)
                self.echo(f"interrupted; re-run the same command to resume the study "
                          f"(reports so far in {files.get('trials', self.study_dir)})")
                raise
        files = write_reports(study, self, echo=self.echo)
        best = best_trial(study)
        return TuneResult(
            study, self.study_dir, best.value if best else None,
            dict(best.params) if best else {}, files,
        )


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best completed trial, or ``None`` before the first completes."""
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def _logged_metric(run_dir: Path, metric: str, step: int) -> float | None:
    """``metric`` as the run's ``metrics.jsonl`` logged it at ``step``, if it did."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    found = [r[metric] for r in read_metrics(path) if r.get("step") == step and metric in r]
    return float(found[-1]) if found else None


def _alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    try:
        os.kill(pid, 0)  # signal 0: only checks
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _plain(tree: Any) -> Any:
    """A config tree as JSON sees it, so a TOML round trip compares equal."""
    return json.loads(json.dumps(tree, sort_keys=True, default=str))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
