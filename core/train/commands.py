"""``suite train`` and ``suite eval``."""

from __future__ import annotations

import argparse

from ..cli_args import add_config_arguments, add_task_argument, build_task
from ..commands import CommandSet
from ..hookspecs import hookimpl
from ..runs import create_run_dir, write_run_config
from .trainer import fit


def _train(args: argparse.Namespace) -> int:
    task = build_task(args.task, args)
    run_dir = create_run_dir(task.name, args.name, args.run_dir)
    write_run_config(run_dir, task.cfg, task.name)
    print(f"run directory: {run_dir}")
    result = fit(task, run_dir)
    for key, value in result.dev_metrics.items():
        print(f"{key} = {value:.4f}")
    print(f"wrote {run_dir}")
    return 0


def _configure_train(p: argparse.ArgumentParser) -> None:
    add_task_argument(p)
    add_config_arguments(p)
    p.add_argument("--name", help="run name (default: a timestamp)")
    p.add_argument("--run-dir", help="exact run directory instead of runs/<task>/<name>")


@hookimpl
def register_commands(cli: CommandSet) -> None:
    cli.add_command("train", help="train a task; writes runs/<task>/<name>/",
                    configure=_configure_train, run=_train)
