"""FeatureStats.all_reduce over 2 torchrun ranks (gloo) x 2 workers equals the whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchsuite.core.data import DatasetWriter
from torchsuite.core.data.preprocess import FeatureStats

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_all_reduce_over_ranks_equals_whole(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(301, 3)) * [1.0, 10.0, 0.1] + [0, 5, -5]
    with DatasetWriter(tmp_path / "d", shard_bytes=1024) as w:
        for i, row in enumerate(x):
            w.add({"x": torch.from_numpy(row.copy()), "id": i}, "train")
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("dist_stats_worker.py")), str(tmp_path / "d"), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert sorted(r["local_rows"] for r in ranks) == [150, 151]  # each saw only its share
    whole = FeatureStats(bins=8, hist_range=(-4.0, 4.0)).update(x)
    for r in ranks:  # every rank holds the merged result
        s = FeatureStats.from_dict(r["stats"])
        assert s.rows == 301
        np.testing.assert_allclose(s.mean, whole.mean, rtol=1e-12)
        np.testing.assert_allclose(s.var, whole.var, rtol=1e-10)
        np.testing.assert_array_equal(s.histogram, whole.histogram)
        assert s.min.tolist() == whole.min.tolist()
