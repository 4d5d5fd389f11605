"""The wheel installs everything under ``torchsuite`` and nothing as top-level core/plugins."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from suite_testing import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # build in a copy so the developer's tree keeps no build/ leftovers
    subprocess.run(
        ["git", "clone", "-q", "--no-hardlinks", str(REPO), str(build / "src")], check=True
    )
    for rel in ("setup.py", "pyproject.toml"):  # uncommitted edits count too
        (build / "src" / rel).write_text((REPO / rel).read_text())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(build / "src"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("torchsuite-*.whl")
    return path


def test_wheel_has_no_top_level_core_or_plugins(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"torchsuite"}, tops
    for expected in (
        "torchsuite/core/__init__.py",
        "torchsuite/core/py.typed",
        "torchsuite/plugins/music/plugin.py",
        "torchsuite/plugins/translation/plugin.py",
        "torchsuite/plugins/driving/plugin.py",
    ):
        assert expected in names


def test_wheel_declares_console_script_and_builtin_entry_points(wheel: Path) -> None:
    zf = zipfile.ZipFile(wheel)
    (eps,) = [n for n in zf.namelist() if n.endswith("entry_points.txt")]
    text = zf.read(eps).decode()
    assert "suite = torchsuite.core.cli:main" in text
    for plugin in ("music", "translation", "driving"):
        assert f"{plugin} = torchsuite.plugins.{plugin}.plugin" in text


def test_public_api_is_explicit() -> None:
    import torchsuite.core as core

    assert set(core.__all__) <= set(dir(core))
    for name in ("Task", "StepOutput", "hookimpl", "option", "resolve_config", "SuiteError"):
        assert name in core.__all__
