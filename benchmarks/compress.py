"""Benchmark: float vs pruned vs dynamic-int8 — size on disk, CPU latency, metric.

Trains the Linear-heavy ``lifecycle-bench`` task (``lifecycle_task.py``: an MLP of
square Linear layers) for a few hundred steps, then runs exactly what ``suite
compress --prune P --quantize dynamic-int8`` runs (:func:`run_compress`) on it and
prints the table plus the ratios against the issue's goal:

    dynamic int8: file size >= 3.5x smaller, CPU latency >= 1.5x lower,
    <= 1% relative metric drop (dev MSE).

    python benchmarks/compress.py                   # 4 x 1024 layers
    python benchmarks/compress.py --width 512 --steps 200
    python benchmarks/compress.py --task translation --from runs/translation/base

With ``--task/--from`` any trained run of any installed task is measured instead
(all plugins are loaded then). Latency is the median of ``--latency-runs`` forward
passes on the task's ``example_inputs()`` with one intra-op thread (so a shared
machine's contention does not decide the result).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
from torchsuite.core.lifecycle.compress import CompressOptions, relative_drop, run_compress

GOAL_SIZE, GOAL_LATENCY, GOAL_DROP = 3.5, 1.5, 1.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--steps", type=int, default=400, help="training steps of the float model")
    p.add_argument("--prune", type=float, default=0.5)
    p.add_argument("--latency-runs", type=int, default=50)
    p.add_argument("--task", help="measure a trained run of this task instead")
    p.add_argument("--from", dest="from_run", help="the run for --task")
    p.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    args = p.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        if args.task:
            if not args.from_run:
                p.error("--task needs --from RUN")
            task, run = args.task, args.from_run
        else:
            from lifecycle_task import install_registry, train_run

            install_registry()
            task = "lifecycle-bench"
            print(f"training {task}: {args.layers} x Linear({args.width}), {args.steps} steps",
                  flush=True)
            run = str(train_run(root / "float", [f"model.width={args.width}",
                                                 f"model.layers={args.layers}",
                                                 f"train.max_steps={args.steps}"]))
        opts = CompressOptions(prune=args.prune, quantize=["dynamic-int8"],
                               latency_runs=args.latency_runs)
        out = run_compress(task, run, opts, run_dir=str(root / "compressed"))
        report = json.loads((out / "compress.json").read_text())

    variants = {v["name"]: v for v in report["variants"]}
    fp, q8 = variants["float"], variants["dynamic-int8"]
    key, mode = report["metric"], report["metric_mode"]
    size_x = fp["size_bytes"] / q8["size_bytes"]
    speed_x = fp["latency_ms"] / q8["latency_ms"]
    drop = relative_drop(fp["metrics"][key], q8["metrics"][key], mode) * 100
    print()
    print(f"dynamic-int8 vs float ({os.cpu_count()} CPUs, 1 intra-op thread):")
    print(f"  size    {size_x:5.2f}x smaller   (goal >= {GOAL_SIZE}x)  "
          f"{'PASS' if size_x >= GOAL_SIZE else 'MISS'}")
    print(f"  latency {speed_x:5.2f}x faster    (goal >= {GOAL_LATENCY}x)  "
          f"{'PASS' if speed_x >= GOAL_LATENCY else 'MISS'}")
    print(f"  {report['split']}.{key} {drop:+.3f}% worse  (goal <= {GOAL_DROP}%)  "
          f"{'PASS' if drop <= GOAL_DROP else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
