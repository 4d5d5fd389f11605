"""2 torchrun ranks (gloo) x 2 DataLoader workers: exactly once, equal batches per rank."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# torchrun start-up dominates (~15 s on 2 cores): run with the slow job.
pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_two_ranks_two_workers_exactly_once(tmp_path: Path, make_ids) -> None:
    data = make_ids(tmp_path / "d", 301, shard_bytes=1024)  # odd count: ranks can't split evenly
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("dist_stream_worker.py")), str(data), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())

    full = result["full"]
    ids = [i for rank in full for b in rank["batches"] for i in b]
    assert sorted(ids) == list(range(301))  # union == split, no repeats
    assert {len(b) for b in full[0]["batches"][:-1]} == {4}

    drop = result["drop"]
    per_rank = [[i for b in r["batches"] for i in b] for r in drop]
    assert [len(x) for x in per_rank] == [150, 150]
    assert [len(r["batches"]) for r in drop] == [38, 38] == [r["len"] for r in drop]
    flat = per_rank[0] + per_rank[1]
    assert len(set(flat)) == 300
