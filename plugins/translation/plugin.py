"""Entry point of the translation plugin (suite.plugins group).

Keep imports light at module level: `suite tasks` imports every plugin module.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from torchsuite.core import CommandSet, Task, hookimpl


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    from .task import TranslationTask

    register(TranslationTask)


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from . import commands

        return int(getattr(commands, name)(args))

    return run


def _configure(name: str) -> Callable[[argparse.ArgumentParser], None]:
    def configure(p: argparse.ArgumentParser) -> None:
        from . import commands

        getattr(commands, name)(p)

    return configure


@hookimpl
def register_commands(cli: CommandSet) -> None:
    cli.add_group("translation", "translation verbs: translate, evaluate, average")
    cli.add_command("translate", group="translation",
                    help="translate stdin to stdout (one sentence a line) with a trained run",
                    configure=_configure("configure_translate"), run=_lazy("run_translate"))
    cli.add_command("evaluate", group="translation",
                    help="sacreBLEU (BLEU, chrF, signatures) of a run on a split, "
                    "writing the hypotheses",
                    configure=_configure("configure_evaluate"), run=_lazy("run_evaluate"))
    cli.add_command("average", group="translation",
                    help="average the last N checkpoints of a run into checkpoints/averaged.pt",
                    configure=_configure("configure_average"), run=_lazy("run_average"))
