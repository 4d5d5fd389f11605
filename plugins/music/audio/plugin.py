"""Entry point ``music-audio`` (``suite.plugins``): the audio task and its verbs.

Kept light: ``suite tasks`` imports every plugin, so torchaudio/matplotlib are only
imported when a verb runs or the task is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchsuite.core import CommandSet, Task, hookimpl

from .commands import configure_synthesize, configure_transfer, run_synthesize, run_transfer
from .gan import MusicAudioGanTask
from .task import MusicAudioTask


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    register(MusicAudioTask)
    register(MusicAudioGanTask)


@hookimpl
def register_commands(cli: CommandSet) -> None:
    cli.add_command(
        "synthesize", group="music",
        help="render a MIDI melody in a learned voice (music-audio run) -> WAV + spectrogram PNG",
        configure=configure_synthesize, run=run_synthesize,
    )
    cli.add_command(
        "transfer", group="music",
        help="re-render a recording's pitch and loudness in another learned voice -> WAV + PNG",
        configure=configure_transfer, run=run_transfer,
    )
