"""Hook implementations: torchsuite imports this module through the entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchsuite.core import Task, hookimpl

from .task import TemplateRegression


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    register(TemplateRegression)
