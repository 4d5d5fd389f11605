"""Benchmark: checkpoint save of a ~100M-parameter model (issue 5 goal).

Goal: saving a checkpoint stalls training no longer than writing its bytes takes,
and holds no copy of the state in memory beyond the one state dict.

Builds a ~100M-parameter MLP with AdamW state (one step taken, so ``exp_avg`` and
``exp_avg_sq`` exist: ~1.2 GB in fp32), then, interleaved ``--repeats`` times:

* ``raw``: ``torch.save`` of the same dict into an open file + ``fsync`` — the time to
  write those bytes durably, the floor for any durable save;
* ``save_checkpoint``: the trainer's save (temp file, fsync, rename, fsync of the
  folder, ``best.pt`` hard link, pruning of old step files).

It prints the best time of each, their ratio, and the peak growth of the process's
resident memory during a save (sampled every 5 ms) next to the state's size.

    python benchmarks/train_checkpoint.py                  # ~100M parameters
    python benchmarks/train_checkpoint.py --width 1024      # ~6M, quick
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch
from torch import nn
from torchsuite.core.train.checkpoint import save_checkpoint


def _peak_rss_growth(fn: Callable[[], Any]) -> tuple[float, int]:
    """Seconds ``fn`` took and the peak RSS above the starting RSS while it ran."""
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    fn()
    took = time.perf_counter() - t0
    done.set()
    t.join()
    return took, peak - base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    args = ap.parse_args()

    model = nn.Sequential(*[nn.Linear(args.width, args.width) for _ in range(args.layers)])
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model(torch.randn(2, args.width)).sum().backward()
    opt.step()  # creates exp_avg / exp_avg_sq
    state = {"format": 1, "task": "bench", "step": 1, "model": model.state_dict(),
             "optimizer": opt.state_dict()}
    nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values()) * 3
    print(f"{n_params / 1e6:.1f}M parameters; model + AdamW state {nbytes / 2**30:.2f} GiB",
          flush=True)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        run = Path(tmp) / "run"
        raw_path = Path(tmp) / "raw.pt"

        def raw() -> None:
            with open(raw_path, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())

        step = 0

        def ours() -> None:
            nonlocal step
            step += 1
            save_checkpoint(state, run, step, is_best=True, keep_last=2)

        times: dict[str, list[float]] = {"raw": [], "save_checkpoint": []}
        growth: dict[str, int] = {"raw": 0, "save_checkpoint": 0}
        for i in range(args.repeats):
            for name, fn in (("raw", raw), ("save_checkpoint", ours)):
                took, grew = _peak_rss_growth(fn)
                times[name].append(took)
                growth[name] = max(growth[name], grew)
            print(f"repeat {i + 1}/{args.repeats}: raw {times['raw'][-1]:.2f}s, "
                  f"save_checkpoint {times['save_checkpoint'][-1]:.2f}s", flush=True)

    best = {k: min(v) for k, v in times.items()}
    for k in times:
        print(f"  {k:16s} {best[k]:6.2f} s  {nbytes / 2**20 / best[k]:7.0f} MiB/s  "
              f"peak RSS growth {growth[k] / 2**20:7.1f} MiB")
    print(f"save_checkpoint / raw write = {best['save_checkpoint'] / best['raw']:.3f} "
          "(goal: ~1.0, the stall is the write itself)")
    print(f"peak extra memory during save = {growth['save_checkpoint'] / nbytes:.3f} x the "
          "state (goal: < 1, no second copy)")


if __name__ == "__main__":
    main()
