"""The README stays true: its core example runs and its first commands name real verbs."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from suite_testing import REPO

README = (REPO / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_core_example_trains(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    block = next(b for b in _python_blocks() if "resolve_config" in b)
    module = types.ModuleType("readme_example")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block, "README.md", "exec"), module.__dict__)
    runs = list((workdir / "runs" / "toy").iterdir())
    assert len(runs) == 1 and (runs[0] / "metrics.jsonl").is_file()
    assert "dev.loss" in capsys.readouterr().out


def test_readme_starts_with_install_and_test_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first_block is not None
    lines = [ln for ln in first_block.group(1).splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 2
    assert "pip install" in lines[0] and "suite train music" in lines[0]
    assert "pytest" in lines[1]
