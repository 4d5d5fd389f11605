"""Entry point ``music-audio`` (``suite.plugins``): registers the audio tasks and verbs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchsuite.core import Task, TaskStatus, hookimpl


class _Placeholder(Task[Any]):
    name = "music-audio"
    description = "spectrogram sound-source model and voice transfer (not trainable yet: issue #8)"
    status = TaskStatus.PLACEHOLDER


@hookimpl
def register_tasks(register: Callable[[type[Task[Any]]], None]) -> None:
    register(_Placeholder)
