"""Core verbs that describe and prepare: ``plugins``, ``tasks``, ``config show``, ``prepare``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .cli_args import add_config_arguments, add_task_argument, build_task
from .commands import CommandSet
from .config import to_toml
from .hookspecs import hookimpl
from .registry import get_registry

__all__ = ["format_table", "register_commands"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned plain-text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plugins(args: argparse.Namespace) -> int:
    reg = get_registry()
    rows = []
    for info in reg.plugins.values():
        if info.source == "core" and info.ok and not args.all:
            continue
        state = "disabled" if info.disabled else ("error" if info.error else "ok")
        rows.append(
            [info.name, info.version or "-", info.source, state, ", ".join(info.tasks) or "-"]
        )
    print(format_table(["plugin", "version", "source", "state", "tasks"], rows))
    errors = [i for i in reg.plugins.values() if i.error]
    for info in errors:
        print(f"\n{info.name} ({info.module}) failed to load:\n  {info.error}")
    return 0


def _tasks(args: argparse.Namespace) -> int:
    reg = get_registry()
    rows = [
        [name, reg.task_plugin[name], cls.status, cls.description]
        for name, cls in sorted(reg.tasks.items())
    ]
    print(format_table(["task", "plugin", "status", "description"], rows))
    return 0


def _config_show(args: argparse.Namespace) -> int:
    task = build_task(args.task, args, require_ready=False)
    print(
        to_toml(task.cfg, header=f"{args.task}: default config (`suite config show {args.task}`)"),
        end="",
    )
    return 0


def _prepare(args: argparse.Namespace) -> int:
    task = build_task(args.task, args)
    out = task.prepare(Path(args.source) if args.source else None)
    print(f"prepared data for '{args.task}' in {out}")
    return 0


def _configure_config_show(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show"], help="show: print the resolved config as TOML")
    add_task_argument(p)
    add_config_arguments(p)


def _configure_prepare(p: argparse.ArgumentParser) -> None:
    add_task_argument(p)
    p.add_argument(
        "--source", help="raw input (file or directory); default: the task's embedded data"
    )
    add_config_arguments(p)


@hookimpl
def register_commands(cli: CommandSet) -> None:
    cli.add_command(
        "plugins",
        help="list plugins with version, source, tasks and load errors",
        run=_plugins,
        configure=lambda p: p.add_argument(
            "--all", action="store_true", help="include the core's own modules"
        ),
    )
    cli.add_command("tasks", help="list registered tasks and whether they can train", run=_tasks)
    cli.add_command(
        "config",
        help="show a task's config as commented TOML",
        configure=_configure_config_show,
        run=_config_show,
    )
    cli.add_command(
        "prepare",
        help="turn raw data into shards and a split manifest "
        "(extra --flags set data.* keys: --src a.de is data.src=a.de)",
        configure=_configure_prepare,
        run=_prepare,
        flag_section="data",
    )
