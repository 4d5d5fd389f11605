"""Benchmark: preparing the default music corpus (music21 -> tokens -> shards).

Runs ``suite prepare music`` logic on the default styles twice into temporary
directories, with the parse cache off: once with ``--workers`` processes (the
default, 2) and once with a single process (the baseline). Prints seconds and
pieces/s of each and the ratio. Goal: the default corpus in under 2 minutes on 2
cores. ``--bach N`` limits the chorales for a quicker look.

    python benchmarks/music_prepare.py
    python benchmarks/music_prepare.py --bach 60 --skip-baseline
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import tempfile
import time
from pathlib import Path

from torchsuite.core.data.shards import read_manifest
from torchsuite.plugins.music.task import MusicConfig, MusicTask


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the parser processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def prepare(workers: int, bach: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and pieces for one prepare run."""
    cfg = MusicConfig()
    cfg.data.workers, cfg.data.cache = workers, False
    if bach:
        cfg.data.max_files = {**cfg.data.max_files, "bach": bach}
    with tempfile.TemporaryDirectory() as tmp:
        cfg.data.dir = str(Path(tmp) / "music")
        task = MusicTask(cfg)
        t0, c0 = time.perf_counter(), _cpu_seconds()
        with contextlib.redirect_stdout(io.StringIO()):
            task.prepare(None)
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        pieces = sum(s.num_records for s in read_manifest(cfg.data.dir).splits.values())
    return seconds, cpu, pieces


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="parser processes (default: 2)")
    p.add_argument("--bach", type=int, default=0, help="limit the chorales (0: all)")
    p.add_argument("--skip-baseline", action="store_true", help="skip the 1-process run")
    args = p.parse_args()
    fast_s, fast_cpu, pieces = prepare(args.workers, args.bach)
    # on a shared machine wall time depends on the neighbours; CPU time / cores does not
    print(f"{args.workers} processes: {fast_s:6.1f} s wall, {fast_cpu:6.1f} s CPU "
          f"(~{fast_cpu / args.workers:.0f} s on {args.workers} idle cores), "
          f"{pieces / fast_s:6.1f} pieces/s ({pieces} pieces; goal < 120 s)", flush=True)
    if args.skip_baseline:
        return
    base_s, base_cpu, _ = prepare(1, args.bach)
    print(f"1 process:   {base_s:6.1f} s wall, {base_cpu:6.1f} s CPU, "
          f"{pieces / base_s:6.1f} pieces/s")
    print(f"speed-up {base_s / fast_s:.2f}x with {args.workers} processes")


if __name__ == "__main__":
    main()
