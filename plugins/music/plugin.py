"""Entry point of the music plugin (suite.plugins group). Keep imports light here:
`suite tasks` imports every plugin module, so the tasks' heavy modules (music21,
pretty_midi, matplotlib) load only when a verb needs them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from torchsuite.core import CommandSet, Task, hookimpl


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    from .task import MusicTask

    register(MusicTask)


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        fn = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        return int(fn(args) or 0)

    return run


def _configure(name: str) -> Callable[[argparse.ArgumentParser], None]:
    def configure(p: argparse.ArgumentParser) -> None:
        from . import commands

        getattr(commands, name)(p)

    return configure


@hookimpl
def register_commands(cli: CommandSet) -> None:
    cli.add_group("music", "music verbs: generate, stylize, style-eval, lyrics (and the "
                  "audio part's verbs)")
    cli.add_command("generate", group="music",
                    help="write a new piece (MIDI + piano-roll PNG) from a trained music run",
                    configure=_configure("configure_generate"),
                    run=_lazy("commands", "run_generate"))
    cli.add_command("stylize", group="music",
                    help="keep a MIDI file's melody and rewrite the other voices in a style",
                    configure=_configure("configure_stylize"),
                    run=_lazy("commands", "run_stylize"))
    cli.add_command("style-eval", group="music",
                    help="train the style classifier of a run and score style transfer "
                         "(accuracy, target-style rate, melody kept)",
                    configure=_configure("configure_style_eval"),
                    run=_lazy("commands", "run_style_eval"))
    cli.add_command("lyrics", group="music",
                    help="train/sample the lyrics language model of a run (--melody: set "
                         "the lyrics to music)",
                    configure=_configure("configure_lyrics"),
                    run=_lazy("commands", "run_lyrics"))
