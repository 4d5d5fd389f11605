"""The ``"preprocess"`` section of ``manifest.json``: named entries saved with the data set.

Entries (feature statistics, label files) are written by an atomic rewrite of the
manifest (temp file + fsync + rename); shards are never touched. A data set
rewritten by ``DatasetWriter`` gets a fresh manifest, so entries describing old
data never survive into new data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import DataError
from .._manifest import Manifest, read_manifest
from ..shards import _write_synced

__all__ = ["get_entry", "put_entry"]

SECTION = "preprocess"


def _raw(data_dir: str | Path) -> tuple[Manifest, dict[str, Any]]:
    m = read_manifest(data_dir)  # validates format and version
    return m, json.loads(m.path.read_text("utf-8"))


def put_entry(data_dir: str | Path, name: str, entry: dict[str, Any]) -> Path:
    """Store ``entry`` (JSON-ready, with a ``"kind"``) under ``name``; returns the manifest."""
    m, raw = _raw(data_dir)
    raw.setdefault(SECTION, {})[name] = entry
    _write_synced(m.path, json.dumps(raw, indent=1).encode("utf-8"))
    return m.path


def get_entry(data_dir: str | Path, name: str, kind: str,
              how: str) -> tuple[Manifest, dict[str, Any]]:
    """The entry ``name`` of ``kind``.

    Raises:
        DataError: None there; names the entries of that kind that exist and ``how`` to
            create the missing one.
    """
    m, raw = _raw(data_dir)
    section = raw.get(SECTION) or {}
    entry = section.get(name)
    if not isinstance(entry, dict) or entry.get("kind") != kind:
        have = sorted(k for k, v in section.items()
                      if isinstance(v, dict) and v.get("kind") == kind)
        noun = {"feature_stats": "feature statistics"}.get(kind, kind)
        raise DataError(f"{m.path} holds no {noun} called {name!r} (it has {have}). {how}")
    return m, entry
