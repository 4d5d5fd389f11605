"""Benchmark: learned planner inference latency on CPU at batch 1 (goal <= 20 ms/frame).

Times the fusion planner (transformer and concat fusion, slim and resnet18 camera) on
one sensor frame, as the closed loop calls it, and prints each against the goal; then
the rule-based safety layer (``safety.safety_layer()``) on a frame that takes its
longest path (a lane change checked against a car in the next lane, two LiDAR sweeps),
and the default planner with it.

    OMP_NUM_THREADS=1 python benchmarks/driving_planner.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torchsuite.plugins.driving.expert import Plan
from torchsuite.plugins.driving.model import FusionPlanner
from torchsuite.plugins.driving.safety import safety_layer
from torchsuite.plugins.driving.sim.sensors import box_segments, cast_rays

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


def _sweep(car_x: float, car_y: float) -> np.ndarray:
    """LiDAR ranges (360 rays, 50 m) with one car at ``(car_x, car_y)`` in the ego frame."""
    p, q = box_segments(np.array([[car_x, car_y]]), np.zeros(1), np.array([4.5]),
                        np.array([1.8]))
    return cast_rays(np.zeros(2), np.arange(360) * (np.pi / 180), p, q, 50.0)


def safety_ms(reps: int) -> float:
    """Milliseconds per frame of the safety layer on its longest path."""
    route = np.array([5.0, 0.0, 10.0, 0.1, 20.0, 0.4, 30.0, 0.9, 14.0, 3.0], np.float32)
    obs = {"lidar": _sweep(-30.0, 3.5), "lidar_prev": _sweep(-31.0, 3.5),
           "prev_pose": np.array([-4.0, 0.0, 0.0], np.float32), "route": route,
           "radar": np.zeros((8, 4), np.float32), "imu": np.array([10.0, 0, 0, 0], np.float32),
           "camera": np.zeros((3, 64, 64), np.uint8)}
    over = np.stack([np.arange(1, 7) * 3.0, np.minimum(np.arange(1, 7) * 0.9, 3.5)], 1)
    plan = Plan(over, 10.0, 0.5)
    guards = safety_layer()
    t0 = time.perf_counter()
    for _ in range(reps):
        out = plan
        for guard in guards:
            out = guard(out, obs, 10.0)
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
            if (backbone, fusion) == ("slim", "transformer"):
                default_ms = ms
    guard_ms = safety_ms(args.reps * 4)
    total = default_ms + guard_ms
    print(f"safety layer (longest path)          {guard_ms:6.2f} ms/frame")
    print(f"slim + transformer + safety layer    {total:6.2f} ms/frame  "
          f"goal/actual = {GOAL_MS / total:4.2f}x")


if __name__ == "__main__":
    main()
