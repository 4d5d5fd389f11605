"""Benchmark: learned planner inference latency on CPU at batch 1 (goal <= 20 ms/frame).

Times the fusion planner (transformer and concat fusion, slim and resnet18 camera) on
one sensor frame, as the closed loop calls it, and prints each against the goal.

    OMP_NUM_THREADS=1 python benchmarks/driving_planner.py
"""

from __future__ import annotations

import argparse
import time

import torch
from torchsuite.plugins.driving.model import FusionPlanner

GOAL_MS = 20.0


def frame() -> tuple[torch.Tensor, ...]:
    """One frame of every input: camera, LiDAR, radar, IMU, route, earlier LiDAR sweep and
    where it was taken."""
    return (torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8),
            torch.rand(1, 360) * 50, torch.rand(1, 8, 4), torch.rand(1, 4), torch.rand(1, 10),
            torch.rand(1, 360) * 50, torch.tensor([[-4.0, 0.0, 0.0]]))


@torch.no_grad()
def latency_ms(model: torch.nn.Module, reps: int) -> float:
    x = frame()
    for _ in range(5):
        model(*x)
    t0 = time.perf_counter()
    for _ in range(reps):
        model(*x)
    return (time.perf_counter() - t0) / reps * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"batch 1, CPU, {args.threads} thread(s); goal <= {GOAL_MS:.0f} ms/frame")
    for backbone in ("slim", "resnet18"):
        for fusion in ("transformer", "concat"):
            model = FusionPlanner(camera_backbone=backbone, fusion=fusion).eval()
            ms = latency_ms(model, args.reps)
            params = sum(q.numel() for q in model.parameters()) / 1e6
            print(f"{backbone:>8} + {fusion:<11} {params:5.2f} M params  {ms:6.2f} ms/frame  "
                  f"goal/actual = {GOAL_MS / ms:4.2f}x")


if __name__ == "__main__":
    main()
