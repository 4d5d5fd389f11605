"""Plugin loading: entry points, error isolation, strict mode, disabling, duplicates."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from torchsuite.core import PluginError, Registry, SuiteError

GOOD = """
from torchsuite.core import Task, hookimpl

class Alpha(Task):
    name = "alpha"

@hookimpl
def register_tasks(register):
    register(Alpha)

@hookimpl
def register_commands(cli):
    cli.add_command("hello", group="alpha", help="say hello", run=lambda args: 0)
"""

CLASHING = """
from torchsuite.core import Task, hookimpl

class OtherAlpha(Task):
    name = "alpha"

class Beta(Task):
    name = "beta"

@hookimpl
def register_tasks(register):
    register(Beta)
    register(OtherAlpha)
"""

BROKEN_IMPORT = "import not_a_real_module_xyz\n"

BROKEN_HOOK = """
from torchsuite.core import hookimpl

@hookimpl
def register_tasks(register):
    raise RuntimeError("boom in register_tasks")
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    for name, text in {
        "p_good": GOOD,
        "p_clash": CLASHING,
        "p_broken": BROKEN_IMPORT,
        "p_badhook": BROKEN_HOOK,
    }.items():
        (tmp_path / f"{name}.py").write_text(text)
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in ("p_good", "p_clash", "p_broken", "p_badhook"):
        sys.modules.pop(name, None)


def ep(name: str, module: str) -> EntryPoint:
    return EntryPoint(name=name, value=module, group="suite.plugins")


def test_good_plugin_registers_tasks_and_commands(plugin_dir: Path) -> None:
    reg = Registry().load([ep("good", "p_good")])
    assert reg.task("alpha").name == "alpha"
    assert reg.plugins["good"].tasks == ["alpha"]
    assert any(c.group == "alpha" and c.name == "hello" for c in reg.commands.commands)


def test_broken_plugins_are_reported_and_skipped(
    plugin_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUITE_STRICT_PLUGINS", raising=False)
    reg = Registry().load(
        [ep("good", "p_good"), ep("broken", "p_broken"), ep("badhook", "p_badhook")]
    )
    assert "ModuleNotFoundError" in reg.plugins["broken"].error
    assert "boom in register_tasks" in reg.plugins["badhook"].error
    assert reg.task("alpha")  # the rest keeps working
    err = capsys.readouterr().err
    assert "plugin 'broken' was skipped" in err and "plugin 'badhook' was skipped" in err


def test_strict_mode_makes_plugin_errors_fatal(
    plugin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUITE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="plugin 'broken'"):
        Registry().load([ep("good", "p_good"), ep("broken", "p_broken")])


def test_disabled_plugins_are_not_imported(
    plugin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUITE_DISABLE_PLUGINS", "broken, good")
    reg = Registry().load([ep("good", "p_good"), ep("broken", "p_broken")])
    assert reg.plugins["good"].disabled and reg.plugins["broken"].disabled
    assert "p_broken" not in sys.modules
    with pytest.raises(SuiteError, match="unknown task 'alpha'"):
        reg.task("alpha")


def test_duplicate_task_name_names_both_plugins(plugin_dir: Path) -> None:
    reg = Registry().load([ep("good", "p_good"), ep("clash", "p_clash")])
    error = reg.plugins["clash"].error
    assert "'alpha' is claimed by two plugins" in error
    assert "'good'" in error and "'clash'" in error
    assert reg.task("alpha").__module__ == "p_good"
    # a plugin that failed half-way registers nothing
    assert "beta" not in reg.tasks and reg.plugins["clash"].tasks == []


def test_loading_twice_registers_once(plugin_dir: Path) -> None:
    reg = Registry()
    reg.load([ep("good", "p_good"), ep("good-again", "p_good")])
    reg.load([ep("good", "p_good")])
    assert list(reg.tasks) == ["alpha"]
    assert sum(1 for c in reg.commands.commands if c.name == "hello") == 1


def test_unknown_task_suggests_close_name(plugin_dir: Path) -> None:
    reg = Registry().load([ep("good", "p_good")])
    with pytest.raises(SuiteError, match="Did you mean 'alpha'"):
        reg.task("alpah")


def test_builtin_plugins_come_from_entry_points() -> None:
    reg = Registry().load()
    for name in ("music", "translation", "driving"):
        assert reg.plugins[name].source == "built-in", reg.plugins[name]
        assert reg.plugins[name].ok, reg.plugins[name].error
        assert name in reg.tasks
