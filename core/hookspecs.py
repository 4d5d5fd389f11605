"""The plugin hooks (pluggy project name ``"suite"``).

A plugin is any module or object with functions decorated by :data:`hookimpl`::

    from torchsuite.core import hookimpl

    @hookimpl
    def register_tasks(register):
        register(MyTask)

and an entry point in its ``pyproject.toml``::

    [project.entry-points."suite.plugins"]
    myplugin = "my_package.plugin"

Every hook is optional.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .commands import CommandSet
    from .task import Task

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "suite"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    """Call ``register(TaskClass)`` once per task the plugin provides."""


@hookspec
def register_commands(cli: CommandSet) -> None:
    """Add verbs to ``suite``, e.g. ``cli.add_command("generate", group="music", ...)``."""


@hookspec
def register_callbacks(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Offer training callbacks by name: ``register("ema", EMACallback)``.

    Users enable them with ``train.callbacks=["ema"]``.
    """
