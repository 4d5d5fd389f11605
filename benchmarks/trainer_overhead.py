"""Benchmark: the core Trainer vs a bare hand-written PyTorch loop (issue 5 goal).

The same MLP, data, optimizer (AdamW, warm-up + cosine), gradient clipping and
number of steps run three ways, interleaved and repeated ``--repeats`` times; the
best (minimum) time of each is compared, since other load on the machine only ever
adds time (medians are printed too):

* ``bare``: a DataLoader loop written by hand (forward, backward, clip, step, schedule);
* ``trainer``: ``fit()`` with logging, progress and checkpoints off;
* ``trainer+log``: ``fit()`` writing a metrics.jsonl line and a progress line every step.

Goals: trainer <= 1.03 x bare, trainer+log <= 1.10 x bare. Times cover the whole
run of every variant (model, optimizer and loader construction included), as wall
time and as this process's CPU time (``time.process_time``): on a shared CPU
machine the CPU-time ratio is the reliable one, since other processes' load only
shows up in wall time.

    OMP_NUM_THREADS=1 python benchmarks/trainer_overhead.py            # CPU, 300 steps
    python benchmarks/trainer_overhead.py --steps 1000 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchsuite.core import StepOutput, Task, TrainableConfig, option, resolve_config
from torchsuite.core.train import fit
from torchsuite.core.train.optim import build_optimizer, build_scheduler


@dataclass
class BenchModel:
    width: int = option(512, "hidden width", ge=1)
    samples: int = option(8192, "training samples", ge=1)


@dataclass
class BenchConfig(TrainableConfig):
    model: BenchModel = field(default_factory=BenchModel)


def _data(n: int) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 128, generator=gen)
    return TensorDataset(x, (x[:, :10] > 0).long().sum(1) % 10)


def _model(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(128, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                         nn.Linear(width, 10))


class BenchTask(Task[BenchConfig]):
    name = "bench-mlp"
    Config = BenchConfig

    def datasets(self) -> Mapping[str, Dataset[Any]]:
        return {"train": _data(self.cfg.model.samples)}

    def build_model(self) -> nn.Module:
        return _model(self.cfg.model.width)

    def training_step(self, model: nn.Module, batch: Any) -> StepOutput:
        x, y = batch
        return StepOutput(nn.functional.cross_entropy(model(x), y))


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``t0``."""
    wall, cpu = _clock()
    return wall - t0[0], cpu - t0[1]


def bare(cfg: BenchConfig, device: torch.device) -> tuple[float, float]:
    """The loop a user would write by hand; returns (wall, CPU) seconds."""
    t0 = _clock()
    torch.manual_seed(cfg.train.seed)
    model = _model(cfg.model.width).to(device)
    opt = build_optimizer(model, cfg.optim)  # same groups/hyper-parameters as the trainer
    sched = build_scheduler(opt, cfg.optim, cfg.train.max_steps)
    loader = DataLoader(_data(cfg.model.samples), batch_size=cfg.train.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    step = 0
    model.train()
    while step < cfg.train.max_steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            step += 1
            if step == cfg.train.max_steps:
                break
    float(loss.detach())  # wait for the device
    return _since(t0)


def trainer(cfg: BenchConfig) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        t0 = _clock()
        fit(BenchTask(cfg), Path(tmp) / "run")
        return _since(t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    common = [f"train.max_steps={args.steps}", f"train.batch_size={args.batch}",
              f"model.width={args.width}", f"train.device={args.device}",
              "train.precision=fp32", "train.eval_every=0", "train.tensorboard=false"]
    quiet = resolve_config(BenchConfig, overrides=[
        *common, "train.checkpoints=false", "train.progress=off",
        f"train.log_every={args.steps}"])
    logged = resolve_config(BenchConfig, overrides=[
        *common, "train.checkpoints=false", "train.progress=lines", "train.log_every=1"])
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "trainer": [], "trainer+log": []}
    bare(quiet, device)  # warm-up: allocator, kernels, lazy imports
    trainer(quiet)
    for i in range(args.repeats):
        runs["bare"].append(bare(quiet, device))
        runs["trainer"].append(trainer(quiet))
        runs["trainer+log"].append(trainer(logged))
        print(f"repeat {i + 1}/{args.repeats}: " + ", ".join(
            f"{k} {v[-1][0]:.3f}s (cpu {v[-1][1]:.3f}s)" for k, v in runs.items()), flush=True)
    print(f"\n{args.steps} steps, batch {args.batch}, width {args.width}, {device} "
          f"(torch threads {torch.get_num_threads()}), best of {args.repeats}:")
    ratios = {}
    for j, clock in enumerate(("wall", "cpu")):
        best = {k: min(x[j] for x in v) for k, v in runs.items()}
        med = {k: statistics.median(x[j] for x in v) for k, v in runs.items()}
        for k, v in best.items():
            print(f"  {clock:4s} {k:12s} {v:7.3f} s  {args.steps / v:8.1f} steps/s  "
                  f"ratio {v / best['bare']:.3f}  (median ratio {med[k] / med['bare']:.3f})")
        ratios[clock] = {k: v / best["bare"] for k, v in best.items()}
    # CPU time of this process is what the trainer adds; wall time also carries the noise
    # of other processes on a shared machine (a CUDA run should read the wall figures).
    for clock in ("wall", "cpu"):
        r = ratios[clock]
        print(f"{clock}: trainer / bare = {r['trainer']:.3f} (goal <= 1.03), "
              f"trainer+log / bare = {r['trainer+log']:.3f} (goal <= 1.10)")

if __name__ == "__main__":
    main()
