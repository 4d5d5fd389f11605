"""Benchmark: simulator + all sensors vs real time, and vectorized LiDAR vs a per-ray loop.

Goals (issue #10): the simulator with every sensor at 10 Hz runs >= 50x real time on
2 cores; LiDAR ray casting is vectorized (rays/s reported against a per-ray Python loop
over the same segments).

    OMP_NUM_THREADS=1 python benchmarks/driving_sim.py --steps 600
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from torchsuite.plugins.driving.sim.sensors import SensorConfig, Sensors, cast_rays
from torchsuite.plugins.driving.sim.world import World, make_scenario


def loop_rays(origin: np.ndarray, angles: np.ndarray, p: np.ndarray, q: np.ndarray,
              max_range: float) -> np.ndarray:
    """The baseline: one ray and one segment at a time, in Python."""
    out = np.full(len(angles), max_range)
    for i, a in enumerate(angles):
        ux, uy = np.cos(a), np.sin(a)
        for (px, py), (qx, qy) in zip(p, q):
            ex, ey = qx - px, qy - py
            wx, wy = px - origin[0], py - origin[1]
            den = ux * ey - uy * ex
            if abs(den) < 1e-12:
                continue
            t = (wx * ey - wy * ex) / den
            r = (wx * uy - wy * ux) / den
            if t > 0 and 0 <= r <= 1 and t < out[i]:
                out[i] = t
    return out


def sim_speed(steps: int, seed: int) -> tuple[float, float]:
    """Seconds per step of world only, and of world + every sensor (steered straight on)."""
    times = []
    for with_sensors in (False, True):
        world = World(make_scenario(seed))
        sensors = Sensors(SensorConfig(), seed)
        t0 = time.perf_counter()
        for _ in range(steps):
            if with_sensors:
                sensors.read(world)
            # Hold the lane: steer by the heading error so the ego stays in the corridor.
            e = world.ego
            err = float(world.path.at(e.s, "heading")) - e.yaw
            world.step(0.3, float(np.clip(1.5 * err - 0.1 * (e.d + 1.75), -0.5, 0.5)))
            if world.done:
                world = World(make_scenario(seed))
        times.append((time.perf_counter() - t0) / steps)
    return times[0], times[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=600, help="simulation steps (0.1 s each)")
    p.add_argument("--seed", type=int, default=100000)
    args = p.parse_args(argv)
    world_s, full_s = sim_speed(args.steps, args.seed)
    dt = 0.1
    print(f"world only:          {world_s * 1e3:7.2f} ms/step  {dt / world_s:7.1f}x real time")
    print(f"world + all sensors: {full_s * 1e3:7.2f} ms/step  {dt / full_s:7.1f}x real time "
          f"(goal >= 50x)")

    world = World(make_scenario(args.seed))
    sensors = Sensors(SensorConfig(), args.seed)
    seg_p, seg_q = sensors.lidar_segments(world)
    origin = np.array([world.ego.x, world.ego.y])
    angles = np.arange(360) * (2 * np.pi / 360)
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        fast = cast_rays(origin, angles, seg_p, seg_q, 50.0)
    t_fast = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    slow = loop_rays(origin, angles, seg_p, seg_q, 50.0)
    t_slow = time.perf_counter() - t0
    assert np.allclose(fast, slow), "vectorized and loop ray casts disagree"
    print(f"lidar: 360 rays x {len(seg_p)} segments")
    print(f"  vectorized: {360 / t_fast:12,.0f} rays/s")
    print(f"  per-ray loop: {360 / t_slow:10,.0f} rays/s")
    print(f"  speed-up: {t_slow / t_fast:.1f}x")


if __name__ == "__main__":
    main()
