"""Helpers shared by tests: fake installed plugins, running `suite` in a subprocess, HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SUITE_SHARED_DATA", REPO.parent / "shared" / "data"))


def install_fake_distribution(
    site: Path, dist: str, files: Mapping[str, str], entry_points: Mapping[str, str]
) -> Path:
    """Write modules plus a ``*.dist-info`` with ``suite.plugins`` entry points into ``site``.

    This is exactly what ``pip install`` leaves behind, minus the copying, so a
    process with ``site`` on ``PYTHONPATH`` discovers the plugin like an installed one.
    """
    site.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[suite.plugins]\n{eps}\n")
    return site


def run_suite(
    args: list[str],
    cwd: Path,
    pythonpath: list[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``suite ARGS`` in a fresh interpreter (so plugin discovery starts clean)."""
    full_env = {**os.environ, **(env or {})}
    paths = [str(p) for p in pythonpath]
    if full_env.get("PYTHONPATH"):
        paths.append(full_env["PYTHONPATH"])
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    full_env.pop("SUITE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "torchsuite.core.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def post_json(url: str, payload: Any, timeout: float = 60) -> tuple[int, Any]:
    """POST ``payload`` as JSON; ``(status, parsed JSON reply)``, error statuses included."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
