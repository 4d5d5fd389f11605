"""Entry point of the translation plugin (suite.plugins group). Keep imports light here:
`suite tasks` imports every plugin module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchsuite.core import Task, TaskStatus, hookimpl


class _Placeholder(Task[Any]):
    name = "translation"
    description = "Transformer machine translation on parallel corpora (not trainable yet: issue #9)"
    status = TaskStatus.PLACEHOLDER


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    register(_Placeholder)
