"""``suite train``, ``suite eval``, ``suite runs`` and ``suite plot``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..cli_args import add_config_arguments, add_task_argument, build_task, task_from_run
from ..commands import CommandSet
from ..errors import SuiteError
from ..hookspecs import hookimpl
from ..runs import RUNS_ROOT, create_run_dir, find_run, list_runs, write_run_config
from . import distributed as dist_utils
from .callbacks import EMACallback, ema_weights, resolve_callbacks
from .checkpoint import best_checkpoint, load_checkpoint, load_model_state
from .report import plot_run, summarize_run
from .trainer import fit


def _launch(args: argparse.Namespace) -> int:
    """Re-run this very command under torchrun with ``--nproc`` processes."""
    argv = ["train", args.task, *args.overrides]
    for flag, values in (("--config", args.config), ("--set", args.set_)):
        for value in values:
            argv += [flag, value]
    for flag, value in (("--name", args.name), ("--run-dir", args.run_dir),
                        ("--resume", args.resume)):
        if value:
            argv += [flag, value]
    cmd = dist_utils.launch_command(args.nproc, argv)
    print("launching: " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def _train(args: argparse.Namespace) -> int:
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args)
    if args.resume:
        task, run_dir = task_from_run(args.resume, args, expected_task=args.task)
        env = dist_utils.setup(task.cfg.train.device)
        if env.is_main and (args.overrides or args.set_ or args.config):
            write_run_config(run_dir, task.cfg, task.name)  # the config the run now follows
    else:
        task = build_task(args.task, args)
        resolve_callbacks(task.cfg.train.callbacks)  # an unknown name fails before any write
        env = dist_utils.setup(task.cfg.train.device)
        run_dir = None
        if env.is_main:
            run_dir = create_run_dir(task.name, args.name, args.run_dir)
            write_run_config(run_dir, task.cfg, task.name)
        run_dir = Path(dist_utils.broadcast_object(env, str(run_dir)))
    if env.is_main:
        print(f"run directory: {run_dir}", flush=True)
    result = fit(task, run_dir, resume_from=run_dir if args.resume else None)
    if not env.is_main:
        return 128 + result.interrupted if result.interrupted else 0
    for key, value in result.dev_metrics.items():
        print(f"{key} = {value:.4f}")
    if result.best_metric is not None:
        print(f"best {result.best_metric:.4f} at step {result.best_step}: "
              f"{result.best_checkpoint}")
    print(f"wrote {run_dir}")
    return 128 + result.interrupted if result.interrupted else 0


def _configure_train(p: argparse.ArgumentParser) -> None:
    add_task_argument(p)
    add_config_arguments(p)
    p.add_argument("--name", help="run name (default: a timestamp)")
    p.add_argument("--run-dir", help="exact run directory instead of runs/<task>/<name>")
    p.add_argument("--resume", metavar="RUN",
                   help="continue a run (directory, name under runs/<task>/, or 'latest') "
                        "exactly from its last checkpoint")
    p.add_argument("--nproc", type=int, default=1,
                   help="train with N local processes (runs torchrun for you)")


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _eval(args: argparse.Namespace) -> int:
    task, run_dir = task_from_run(args.from_run, args, expected_task=args.task)
    path = Path(args.checkpoint) if args.checkpoint else best_checkpoint(run_dir)
    model = task.build_model()
    ckpt = load_checkpoint(path)
    if args.ema:
        averaged = ema_weights(ckpt)
        if averaged is None:
            raise SuiteError(
                f"checkpoint '{path}' holds no averaged weights: its run trained without the "
                "'ema' callback. Drop --ema, or train with train.callbacks=[\"ema\"]."
            )
        ckpt = {**ckpt, "model": averaged}
    load_model_state(model, ckpt, task=task.name, path=path)
    model.to(_device())
    metrics = task.evaluate(model, args.split)
    for key, value in metrics.items():
        print(f"{args.split}.{key} = {value:.4f}")
    details = task.after_evaluate(run_dir, args.split, model)
    for key, value in details.items():
        print(f"{args.split}.{key} = {value:.4f}" if isinstance(value, float)
              else f"{args.split}.{key}: {value}")
    out = run_dir / f"eval-{args.split}{'-ema' if args.ema else ''}.json"
    out.write_text(json.dumps({"checkpoint": str(path), "split": args.split,
                               "weights": "ema" if args.ema else "model", **metrics,
                               **details}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _configure_eval(p: argparse.ArgumentParser) -> None:
    add_task_argument(p)
    p.add_argument("--from", dest="from_run", required=True, metavar="RUN",
                   help="run directory, name under runs/<task>/, or 'latest'")
    p.add_argument("--split", default="dev", help="split to evaluate (default: dev)")
    p.add_argument("--checkpoint", help="a checkpoint file (default: the run's best)")
    p.add_argument("--ema", action="store_true",
                   help="evaluate the averaged weights of the 'ema' callback instead")
    add_config_arguments(p)


def _runs(args: argparse.Namespace) -> int:
    runs = list_runs(args.task)
    if not runs:
        print(f"no runs under {RUNS_ROOT / (args.task or '')}")
        return 0
    rows = [("TASK", "RUN", "STEPS", "METRIC", "BEST", "AT", "PATH")]
    for run in runs:
        s = summarize_run(run)
        best = f"{s.best:.4f}" if s.best is not None else "-"
        rows.append((s.task, s.name, str(s.steps), s.monitor, best,
                     str(s.best_step or "-"), str(s.path)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _plot(args: argparse.Namespace) -> int:
    run = find_run(args.run, args.task)
    out = plot_run(run, Path(args.out) if args.out else None)
    print(f"wrote {out}")
    return 0


def _configure_plot(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory (or a run name with --task)")
    p.add_argument("--task", help="task whose runs/<task>/ holds RUN")
    p.add_argument("--out", help="PNG path (default: <run>/curves.png)")


@hookimpl
def register_commands(cli: CommandSet) -> None:
    cli.add_command("train", help="train a task; writes runs/<task>/<name>/",
                    configure=_configure_train, run=_train)
    cli.add_command("eval", help="evaluate a run's best checkpoint on a split",
                    configure=_configure_eval, run=_eval)
    cli.add_command("runs", help="list runs with their best dev metric", run=_runs,
                    configure=lambda p: p.add_argument("task", nargs="?",
                                                       help="only this task's runs"))
    cli.add_command("plot", help="write a PNG of a run's loss and metric curves",
                    configure=_configure_plot, run=_plot)


@hookimpl
def register_callbacks(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """The core's own callbacks, offered by name like a plugin's (``train.callbacks``)."""
    register("ema", EMACallback)


__all__ = ["register_callbacks", "register_commands"]
