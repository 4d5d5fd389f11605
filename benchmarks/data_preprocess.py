"""Benchmark: preprocessing over shards — streaming statistics and the balanced stream.

1. Feature statistics of a split: :func:`compute_stats` (shard by shard, Welford merge,
   0 and 2 workers) vs the naive baseline that loads every record into one array and
   calls numpy. Prints rows/s, peak traced memory of each and the ratios, and checks
   that the results agree.
2. Class balancing: samples/s of ``ShardStream(sampling=SamplingPlan(...))`` vs the plain
   shuffled ``ShardStream`` over the same records, and the class mix each one serves.

    python benchmarks/data_preprocess.py
    python benchmarks/data_preprocess.py --records 50000 --rows 64
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchsuite.core.data import DatasetWriter, ShardedDataset, ShardStream, StreamLoader
from torchsuite.core.data.preprocess import SamplingPlan, compute_stats, read_labels

CLASSES = {"cruise": 0.85, "turn": 0.10, "merge": 0.05}


def log(msg: str) -> None:
    print(msg, flush=True)


def write(root: Path, n: int, rows: int, features: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    scale = np.logspace(-2, 2, features).astype(np.float32)
    labels = rng.choice(list(CLASSES), size=n, p=list(CLASSES.values()))
    out = root / "ds"
    with DatasetWriter(out, shard_bytes=4 << 20, overwrite=True) as w:
        for i in range(n):
            x = rng.standard_normal((rows, features), dtype=np.float32) * scale + 1.0
            w.add({"x": torch.from_numpy(x), "label": str(labels[i])}, "train")
    return out


def timed(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    """Result, seconds (untraced run) and peak traced memory (a second, traced run:
    tracemalloc slows allocation-heavy code several times)."""
    t0 = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t0
    tracemalloc.start()
    try:
        fn()
        return out, secs, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def naive_stats(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Baseline: every record into memory, then numpy."""
    allx = np.concatenate([r["x"].numpy() for r in ShardedDataset(path, "train")])
    return allx.mean(0, dtype=np.float64), allx.var(0, ddof=1, dtype=np.float64)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--rows", type=int, default=32, help="feature rows per record")
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="prep-bench-"))
    try:
        t = time.perf_counter()
        path = write(root, args.records, args.rows, args.features)
        total_rows = args.records * args.rows
        log(f"{args.records} records x [{args.rows}, {args.features}] float32 written in "
            f"{time.perf_counter() - t:.1f} s ({root})")

        log("feature statistics (mean/var/min/max):")
        (mean0, var0), t_naive, m_naive = timed(lambda: naive_stats(path))
        res = {}
        for workers in (0, 2):
            s, secs, mem = timed(lambda w=workers: compute_stats(path, "train", key="x",
                                                                 num_workers=w))
            np.testing.assert_allclose(s.mean, mean0, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(s.var, var0, rtol=1e-5)
            res[workers] = (secs, mem)
            log(f"  compute_stats, {workers} workers: {total_rows / secs:12,.0f} rows/s  "
                f"peak traced {mem / 2**20:7.1f} MiB (main process)")
        log(f"  naive (load all + numpy):  {total_rows / t_naive:12,.0f} rows/s  "
            f"peak traced {m_naive / 2**20:7.1f} MiB")
        log(f"  ratio speed (2 workers / naive): {t_naive / res[2][0]:.2f}x; "
            f"memory (naive / compute_stats): {m_naive / max(res[0][1], 1):.0f}x")

        log("class balancing in the stream:")
        t0 = time.perf_counter()
        labels = read_labels(path, "train", key="label")
        t_lab = time.perf_counter() - t0
        plan = SamplingPlan(labels, "balanced")
        log(f"  read_labels: {len(labels) / t_lab:,.0f} records/s")
        speeds = {}
        for name, stream in (("plain", ShardStream(path, "train", seed=0)),
                             ("balanced", ShardStream(path, "train", seed=0, sampling=plan))):
            loader = StreamLoader(stream, batch_size=args.batch_size, num_workers=2)
            t0 = time.perf_counter()
            mix: Counter[str] = Counter()
            for batch in loader:
                mix.update(batch["label"])
            secs = time.perf_counter() - t0
            speeds[name] = sum(mix.values()) / secs
            shares = {k: round(v / sum(mix.values()), 3) for k, v in sorted(mix.items())}
            log(f"  {name:8s} {speeds[name]:10,.0f} samples/s  class mix {shares}")
        log(f"  ratio samples/s (balanced / plain): {speeds['balanced'] / speeds['plain']:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
