"""Run directories: ``runs/<task>/<name>/`` holding ``config.toml``, ``metrics.jsonl``,
``checkpoints/``, ``samples/`` and ``export/`` (DESIGN.md)."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from .config import load_toml, to_toml
from .errors import SuiteError

__all__ = [
    "RUNS_ROOT",
    "create_run_dir",
    "find_run",
    "list_runs",
    "read_run_config",
    "write_run_config",
]

#: Where runs go unless ``--run-dir`` says otherwise (``SUITE_RUNS`` overrides).
RUNS_ROOT = Path(os.environ.get("SUITE_RUNS", "runs"))


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def create_run_dir(task: str, name: str | None = None, run_dir: str | Path | None = None) -> Path:
    """Make a fresh run directory; never reuses (and so never overwrites) an existing one.

    Args:
        task: Task name (the middle path component).
        name: Run name; defaults to a timestamp. ``-2``, ``-3``... is appended on clashes
            of default names; an explicit name that already exists is an error.
        run_dir: Exact directory to use instead of ``runs/<task>/<name>``.
    """
    if run_dir is not None:
        path = Path(run_dir)
        if path.exists() and any(path.iterdir()):
            raise SuiteError(
                f"run directory '{path}' already exists and is not empty; pick another "
                f"--run-dir, or continue that run with --resume {path}."
            )
        path.mkdir(parents=True, exist_ok=True)
        return path
    root = RUNS_ROOT / task
    if name:
        path = root / name
        if path.exists():
            raise SuiteError(
                f"run '{path}' already exists; choose another --name, or continue it with "
                f"--resume {path}."
            )
    else:
        base = _timestamp()
        path, n = root / base, 1
        while path.exists():
            n += 1
            path = root / f"{base}-{n}"
    path.mkdir(parents=True)
    return path


def find_run(ref: str | Path, task: str | None = None) -> Path:
    """Resolve ``--from``/``--resume`` values: a path, a run name under ``runs/<task>/``,
    or ``latest``."""
    ref = str(ref)
    candidates = [Path(ref)]
    if task:
        if ref == "latest":
            runs = list_runs(task)
            if not runs:
                raise SuiteError(
                    f"no runs of task '{task}' under '{RUNS_ROOT / task}' yet; "
                    f"train one first with `suite train {task}`."
                )
            return runs[-1]
        candidates.append(RUNS_ROOT / task / ref)
    for path in candidates:
        if (path / "config.toml").is_file():
            return path
    where = f" or '{RUNS_ROOT / task / ref}'" if task else ""
    raise SuiteError(
        f"run '{ref}' not found: expected a run directory with a config.toml at '{ref}'{where}. "
        f"`suite runs` lists existing runs."
    )


def list_runs(task: str | None = None) -> list[Path]:
    """Run directories (oldest first by modification time)."""
    roots = [RUNS_ROOT / task] if task else sorted(p for p in RUNS_ROOT.glob("*") if p.is_dir())
    runs = [
        p
        for root in roots
        if root.is_dir()
        for p in root.iterdir()
        if (p / "config.toml").is_file()
    ]
    return sorted(runs, key=lambda p: p.stat().st_mtime)


def write_run_config(run_dir: Path, cfg: Any, task: str) -> Path:
    """Write the fully resolved config as ``config.toml`` (loadable with ``--config``)."""
    path = run_dir / "config.toml"
    header = f"task = {task}\nresolved config written by torchsuite; reuse with --config {path}"
    text = to_toml(cfg, header=header)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    (run_dir / "task").write_text(task + "\n")
    return path


def read_run_config(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """The task name and the raw config dict saved in a run directory."""
    task_file = run_dir / "task"
    task = task_file.read_text().strip() if task_file.is_file() else ""
    return task, load_toml(run_dir / "config.toml")
