"""Benchmark: served requests/s and p50/p99 latency, with and without dynamic batching.

Starts the real ``suite serve`` app (:func:`build_app` + uvicorn) for the Linear-heavy
``lifecycle-bench`` task (``lifecycle_task.py``) in a separate process on 127.0.0.1,
twice: ``--max-batch 1`` (every request its own forward pass) and ``--max-batch 32``
(dynamic batching). A client process drives each at concurrency 1, 8 and 32 with
keep-alive connections and prints requests/s, p50 and p99 latency and the ratio
against the issue's goal (batching >= 3x requests/s at concurrency 32). Both servers
are stopped at the end.

    python benchmarks/serve.py
    python benchmarks/serve.py --requests 400 --width 2048 --threads 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

GOAL = 3.0


def _server(run_dir: str, max_batch: int, max_wait_ms: float, adaptive: bool, threads: int,
            ports: Any, stop: Any) -> None:
    """Child process: serve ``run_dir`` until ``stop`` is set."""
    import torch
    from lifecycle_task import install_registry
    from torchsuite.core.lifecycle.serve import (
        ServeAdapter,
        ServeOptions,
        build_app,
        serve_in_thread,
    )
    from torchsuite.core.lifecycle.source import load_source

    torch.set_num_threads(threads)
    install_registry()
    source = load_source("lifecycle-bench", run_dir)
    app = build_app(ServeAdapter(source.task, source.model),
                    ServeOptions(max_batch=max_batch, max_wait_ms=max_wait_ms,
                                 adaptive_wait=adaptive))
    with serve_in_thread(app) as url:
        ports.put(url)
        stop.wait()


def _drive(host: str, port: int, path: str, body: bytes, concurrency: int,
           total: int) -> tuple[float, list[float]]:
    """``total`` POSTs from ``concurrency`` keep-alive connections: (wall s, latencies ms)."""
    lock = threading.Lock()
    left = [total]
    latencies: list[float] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        mine = []
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            t0 = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            mine.append((time.perf_counter() - t0) * 1000)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies


def _health(host: str, port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("GET", "/health")
    data = json.loads(conn.getresponse().read())["batching"]
    conn.close()
    return data


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--requests", type=int, default=256, help="requests per measurement")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--fixed-wait", action="store_true",
                   help="batching server always waits --max-wait-ms (suite serve --fixed-wait)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = p.parse_args()

    from lifecycle_task import install_registry, train_run

    install_registry()
    results: dict[tuple[int, int], tuple[float, float, float]] = {}
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        run = train_run(Path(tmp) / "run", [f"model.width={args.width}",
                                            f"model.layers={args.layers}",
                                            "train.max_steps=1", "data.n=256"])
        for max_batch in (1, 32):
            ports, stop = ctx.Queue(), ctx.Event()
            proc = ctx.Process(target=_server, args=(str(run), max_batch, args.max_wait_ms,
                                                     not args.fixed_wait, args.threads, ports,
                                                     stop), daemon=True)
            proc.start()
            try:
                url = ports.get(timeout=300)
                host, port = url.removeprefix("http://").split(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                conn.request("GET", "/v1/tasks/lifecycle-bench")
                info = json.loads(conn.getresponse().read())
                conn.close()
                body = json.dumps(info["example_request"]).encode()
                _drive(host, int(port), info["predict"], body, 4, 32)  # warm-up
                for c in args.concurrency:
                    before = _health(host, int(port))
                    wall, lat = _drive(host, int(port), info["predict"], body, c, args.requests)
                    after = _health(host, int(port))
                    mean_batch = ((after["requests"] - before["requests"])
                                  / max(1, after["batches"] - before["batches"]))
                    results[(max_batch, c)] = (len(lat) / wall, _pct(lat, 0.5), _pct(lat, 0.99))
                    print(f"max_batch={max_batch:<3d} concurrency={c:<3d} "
                          f"{results[(max_batch, c)][0]:8.1f} req/s  "
                          f"p50 {results[(max_batch, c)][1]:7.2f} ms  "
                          f"p99 {results[(max_batch, c)][2]:7.2f} ms  "
                          f"mean batch {mean_batch:5.1f}", flush=True)
            finally:
                stop.set()
                proc.join(30)
                if proc.is_alive():
                    proc.terminate()

    print()
    print(f"model: {args.layers} x Linear({args.width}); server torch threads: {args.threads}; "
          f"batching max_wait {args.max_wait_ms:g} ms "
          f"({'fixed' if args.fixed_wait else 'adaptive'})")
    print(f"{'concurrency':>11}  {'req/s b=1':>10}  {'req/s b=32':>10}  {'ratio':>6}  "
          f"{'p50 b=1':>8}  {'p50 b=32':>8}  {'p99 b=1':>8}  {'p99 b=32':>8}")
    for c in args.concurrency:
        one, many = results[(1, c)], results[(32, c)]
        print(f"{c:>11}  {one[0]:>10.1f}  {many[0]:>10.1f}  {many[0] / one[0]:>5.2f}x  "
              f"{one[1]:>8.2f}  {many[1]:>8.2f}  {one[2]:>8.2f}  {many[2]:>8.2f}")
    top = max(args.concurrency)
    ratio = results[(32, top)][0] / results[(1, top)][0]
    print(f"dynamic batching at concurrency {top}: {ratio:.2f}x requests/s "
          f"(goal >= {GOAL}x) {'PASS' if ratio >= GOAL else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
