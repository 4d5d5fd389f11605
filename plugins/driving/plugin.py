"""Entry point of the driving plugin (suite.plugins group). Keep imports light here:
`suite tasks` imports every plugin module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchsuite.core import Task, TaskStatus, hookimpl


class _Placeholder(Task[Any]):
    name = "driving"
    description = (
        "sensor-fusion route/path planning and adaptive cruise (not trainable yet: issue #10)"
    )
    status = TaskStatus.PLACEHOLDER


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    register(_Placeholder)
