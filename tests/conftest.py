"""Shared test fixtures: isolated run/data directories and the template plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from suite_testing import REPO, install_fake_distribution


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean current directory so runs/ and data/ land in a temp folder."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def template_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples/plugin-template package made discoverable as an installed distribution."""
    site = tmp_path_factory.mktemp("site")
    src = REPO / "examples" / "plugin-template" / "suite_template"
    files = {f"suite_template/{p.name}": p.read_text() for p in src.glob("*.py")}
    return install_fake_distribution(
        site, "suite-template-plugin", files, {"template": "suite_template.plugin"}
    )
