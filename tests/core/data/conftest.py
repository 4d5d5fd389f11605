"""Small data sets for the core data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchsuite.core.data import DatasetWriter


def write_ids(path: Path, n: int, *, shard_bytes: int = 4096, payload: int = 64,
              split: str = "train") -> Path:
    """A data set whose records are ``{"id": i, "x": tensor}`` in one split."""
    with DatasetWriter(path, salt="t", shard_bytes=shard_bytes) as w:
        for i in range(n):
            w.add({"id": i, "x": torch.full((payload // 8,), i, dtype=torch.int64)},
                  split=split, group=f"g{i}")
    return path


@pytest.fixture
def make_ids():
    """The ``write_ids`` helper, for tests that need their own sizes."""
    return write_ids


@pytest.fixture
def ids_dataset(tmp_path: Path) -> Path:
    """1000 records in ~20 shards."""
    return write_ids(tmp_path / "ds", 1000)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
