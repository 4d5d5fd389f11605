"""Entry point of the music plugin (suite.plugins group). Keep imports light here:
`suite tasks` imports every plugin module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchsuite.core import Task, TaskStatus, hookimpl


class _Placeholder(Task[Any]):
    name = "music"
    description = "MIDI generation on the bundled Bach chorales (not trainable yet: issue #7)"
    status = TaskStatus.PLACEHOLDER


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    register(_Placeholder)
