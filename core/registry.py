"""The plugin manager: loads built-in and third-party plugins the same way.

Plugins come from the ``suite.plugins`` entry-point group (the built-in music,
translation and driving plugins are registered there by torchsuite's own
``pyproject.toml``), plus the core's own command modules. Loading is isolated:
a plugin that fails to import or to register is recorded with its error and
skipped, unless ``SUITE_STRICT_PLUGINS=1``. ``SUITE_DISABLE_PLUGINS=a,b`` skips
plugins by name. The registry is built once per process (:func:`get_registry`),
which keeps DataLoader workers and torchrun ranks cheap and consistent.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from .commands import CommandSet
from .errors import PluginError, SuiteError
from .task import Task

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "Registry",
    "get_registry",
    "reset_registry",
]

ENTRY_POINT_GROUP = "suite.plugins"

#: Core modules that add verbs through the same hooks as plugins do.
CORE_MODULES: tuple[str, ...] = (
    "torchsuite.core.cli_info",
    "torchsuite.core.train.commands",
    "torchsuite.core.lifecycle.commands",
    "torchsuite.core.tune.commands",
)


@dataclass
class PluginInfo:
    """What ``suite plugins`` shows for one plugin."""

    name: str
    source: str  # "core", "built-in" or the distribution that provides it
    version: str = ""
    module: str = ""
    tasks: list[str] = field(default_factory=list)
    error: str = ""
    disabled: bool = False

    @property
    def ok(self) -> bool:
        return not self.error and not self.disabled


def strict_plugins() -> bool:
    """Whether ``SUITE_STRICT_PLUGINS`` turns plugin failures into errors."""
    return os.environ.get("SUITE_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"}


def _disabled() -> set[str]:
    raw = os.environ.get("SUITE_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Registry:
    """Plugins, their tasks, commands and callbacks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.tasks: dict[str, type[Task[Any]]] = {}
        self.task_plugin: dict[str, str] = {}
        self.callbacks: dict[str, Callable[..., Any]] = {}
        self.commands = CommandSet()
        self._loaded = False

    # ------------------------------------------------------------------ loading
    def load(self, entry_points_: Iterable[EntryPoint] | None = None) -> Registry:
        """Import and register all plugins once; later calls do nothing."""
        if self._loaded:
            return self
        self._loaded = True
        for module in CORE_MODULES:
            name = module.removeprefix("torchsuite.")
            self._add(name, "core", "", lambda m=module: importlib.import_module(m), module)
        eps = entry_points(group=ENTRY_POINT_GROUP) if entry_points_ is None else entry_points_
        disabled = _disabled()
        seen_values: set[str] = set()
        for ep in sorted(eps, key=lambda e: e.name):
            if ep.value in seen_values or ep.name in self.plugins:
                continue  # the same plugin visible twice (e.g. an editable + a regular install)
            seen_values.add(ep.value)
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else ""
            version = dist.version if dist is not None else ""
            source = "built-in" if dist_name == "torchsuite" else (dist_name or "entry point")
            if ep.name in disabled:
                self.plugins[ep.name] = PluginInfo(
                    ep.name, source, version, ep.value, disabled=True
                )
                continue
            self._add(ep.name, source, version, ep.load, ep.value)
        self._collect()
        return self

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        info.error = _describe(exc)
        if strict_plugins():
            raise PluginError(
                f"plugin '{info.name}' ({info.module}) failed: {info.error}. "
                f"Unset SUITE_STRICT_PLUGINS to skip it, or fix/uninstall the plugin."
            ) from exc
        if os.environ.get("SUITE_DEBUG"):
            traceback.print_exception(exc)
        print(
            f"warning: plugin '{info.name}' was skipped: {info.error} "
            f"(`suite plugins` lists it; SUITE_DISABLE_PLUGINS={info.name} silences this)",
            file=sys.stderr,
        )

    def _add(
        self, name: str, source: str, version: str, loader: Callable[[], Any], module: str
    ) -> None:
        info = PluginInfo(name, source, version, module)
        self.plugins[name] = info
        try:
            plugin = loader()
            if self.pm.is_registered(plugin):
                return
            self.pm.register(plugin, name=name)
        except Exception as exc:  # isolate: one broken plugin never breaks the CLI
            self._fail(info, exc)

    def _impls(self, hook_name: str) -> list[tuple[str, Callable[..., Any], list[str]]]:
        hook = getattr(self.pm.hook, hook_name)
        return [
            (impl.plugin_name, impl.function, list(impl.argnames)) for impl in hook.get_hookimpls()
        ]

    def _collect(self) -> None:
        """Call each plugin's hooks separately so errors are charged to the right plugin."""
        for plugin_name, func, _ in reversed(self._impls("register_tasks")):
            info = self.plugins[plugin_name]
            added: list[str] = []

            def register(
                task_cls: type[Task[Any]], _plugin: str = plugin_name, _added: list[str] = added
            ) -> None:
                self._register_task(task_cls, _plugin)
                _added.append(task_cls.name)

            try:
                func(register=register)
            except Exception as exc:
                for name in added:  # a half-registered plugin is not registered at all
                    self.tasks.pop(name, None)
                    self.task_plugin.pop(name, None)
                self._fail(info, exc)
                continue
            info.tasks = added
        for plugin_name, func, _ in reversed(self._impls("register_callbacks")):
            try:
                func(register=lambda key, cb: self.callbacks.setdefault(key, cb))
            except Exception as exc:
                self._fail(self.plugins[plugin_name], exc)
        for plugin_name, func, _ in reversed(self._impls("register_commands")):
            self.commands.current_plugin = plugin_name
            try:
                func(cli=self.commands)
            except Exception as exc:
                self._fail(self.plugins[plugin_name], exc)

    def _register_task(self, task_cls: type[Task[Any]], plugin: str) -> None:
        name = getattr(task_cls, "name", "")
        if not name or not isinstance(name, str):
            raise TypeError(f"{task_cls!r} has no string 'name' class attribute")
        owner = self.task_plugin.get(name)
        if owner is not None:
            if self.tasks[name] is task_cls:
                return  # the same class registered twice: keep one
            raise SuiteError(
                f"task name '{name}' is claimed by two plugins: '{owner}' "
                f"({self.tasks[name].__module__}.{self.tasks[name].__qualname__}) and '{plugin}' "
                f"({task_cls.__module__}.{task_cls.__qualname__}). Rename one task or disable "
                f"one plugin with SUITE_DISABLE_PLUGINS={plugin}."
            )
        self.tasks[name] = task_cls
        self.task_plugin[name] = plugin

    # ------------------------------------------------------------------ lookup
    def task(self, name: str) -> type[Task[Any]]:
        """The task class called ``name``, or a :class:`SuiteError` listing the known ones."""
        try:
            return self.tasks[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, list(self.tasks), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            broken = [p.name for p in self.plugins.values() if p.error]
            extra = (
                f" Plugins that failed to load: {', '.join(broken)} (see `suite plugins`)."
                if broken
                else ""
            )
            known = ", ".join(sorted(self.tasks)) or "none"
            raise SuiteError(f"unknown task '{name}'.{hint} Known tasks: {known}.{extra}") from None


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry().load()
    return _REGISTRY


def reset_registry() -> None:
    """Forget the loaded registry (tests use this after changing the environment)."""
    global _REGISTRY
    _REGISTRY = None
