"""``suite tune TASK --param KEY=SPEC ...``: hyper-parameter search with Optuna."""

from __future__ import annotations

import argparse
import importlib

from ..cli_args import add_config_arguments, add_task_argument
from ..commands import CommandSet
from ..config import parse_override
from ..errors import ConfigError, SuiteError
from ..hookspecs import hookimpl
from ..registry import get_registry
from ..task import TaskStatus
from .settings import TuneConfig, split_tune_table, tune_config

__all__ = ["register_commands", "require_optuna", "run_tune", "settings_from_args"]

_EPILOG = """\
examples:
  suite tune mytask train.max_steps=2000 --trials 30 --param optim.lr=loguniform:1e-4:1e-2 \\
      --param model.d_model=choice:128,256,512 --metric dev.loss --direction min
  suite tune mytask --config search.toml            # a [tune] table in the file
  suite tune mytask ... --storage postgresql://host/db --study s1   # on each machine

spec kinds: loguniform:LO:HI  uniform:LO:HI[:STEP]  int:LO:HI[:STEP]  logint:LO:HI  choice:A,B
Fixed KEY=VALUE overrides go right after TASK (or anywhere as --set KEY=VALUE).
Ctrl-C stops; re-running the same command resumes the study (runs/<task>/<study>/study.db),
continuing an interrupted trial from its last checkpoint."""


def _param(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not KEY=SPEC (e.g. optim.lr=loguniform:1e-4:1e-2)"
        )
    key, spec = text.split("=", 1)
    return key.strip(), spec.strip()


def _configure(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _EPILOG
    add_task_argument(p)
    add_config_arguments(p)
    p.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=SPEC",
                   help="a tuned config key and its range (repeatable)")
    p.add_argument("--trials", type=int, help="finished trials to reach (default 20)")
    p.add_argument("--metric", help="dev metric to optimise (default dev.loss)")
    p.add_argument("--direction", choices=("min", "max"), help="default min")
    p.add_argument("--pruner", choices=("median", "successive-halving", "hyperband", "none"),
                   help="stops bad trials early on their dev metric (default median)")
    p.add_argument("--sampler", choices=("tpe", "random"), help="default tpe")
    p.add_argument("--study", help="study name (default 'tune')")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite in the study dir)")
    p.add_argument("--seed", type=int, help="sampler seed (default: random)")
    p.add_argument("--timeout", type=float, help="start no new trial after SECONDS")
    p.add_argument("--heartbeat", type=int, help="trial heartbeat seconds (default 60)")
    p.add_argument("--study-dir", help="directory for trials and reports "
                                       "(default runs/<task>/<study>)")


def settings_from_args(args: argparse.Namespace) -> tuple[TuneConfig, dict, list[str]]:
    """(tune settings, config tree from the files, user overrides) of parsed arguments."""
    from .space import parse_param

    table, tree = split_tune_table(args.config)
    params = {}
    for key, spec in args.param:
        parse_param(key, spec)  # grammar errors before anything else
        params[key] = spec
    settings = tune_config(
        table, params=params, trials=args.trials, metric=args.metric,
        direction=args.direction, pruner=args.pruner, sampler=args.sampler, study=args.study,
        storage=args.storage, seed=args.seed, timeout=args.timeout, heartbeat=args.heartbeat,
    )
    overrides = [*getattr(args, "overrides", []), *getattr(args, "set_", [])]
    for text in overrides:
        key, _ = parse_override(text)
        if key.startswith("tune."):
            raise ConfigError(
                f"override '{text}': set tune settings with flags (--trials, --param ...) or a "
                f"[tune] table in a --config file."
            )
    return settings, tree, overrides


def require_optuna() -> None:
    """Raise a one-paragraph error naming the extra when Optuna is not installed."""
    try:
        importlib.import_module("optuna")
    except ImportError:
        raise SuiteError(
            "`suite tune` needs Optuna, which is not installed. Install the extra with "
            "`pip install 'torchsuite[tune]'` (or `pip install optuna`) and run the command "
            "again."
        ) from None


def run_tune(args: argparse.Namespace) -> int:
    """The ``suite tune`` verb."""
    from pathlib import Path

    require_optuna()
    from .study import Tuner

    cls = get_registry().task(args.task)
    if cls.status != TaskStatus.READY:
        raise SuiteError(f"task '{args.task}' is a {cls.status}: it cannot train yet, so it "
                         f"cannot be tuned.")
    settings, tree, overrides = settings_from_args(args)
    tuner = Tuner(cls, settings, base=tree, overrides=overrides,
                  study_dir=Path(args.study_dir) if args.study_dir else None)
    result = tuner.run()
    if result.best_value is None:
        print("no trial completed; see the errors above.")
        return 1
    print(f"best {settings.metric} = {result.best_value:.6g}; "
          f"train it: suite train {cls.name} --config {result.files['best_config']}")
    return 0


@hookimpl
def register_commands(cli: CommandSet) -> None:
    cli.add_command(
        "tune",
        help="hyper-parameter search with Optuna; one run per trial in runs/<task>/<study>/",
        configure=_configure,
        run=run_tune,
    )
