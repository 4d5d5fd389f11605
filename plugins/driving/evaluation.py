"""Driving the held-out scenarios for ``suite drive evaluate``, in one process or several.

Each (policy, scenario) pair is independent: a fresh policy, a world built from the
scenario's seed. A pool of worker processes therefore gives the same table as one
process (the learned rows up to floating-point rounding where a worker runs the network
with another thread count), ``workers`` times sooner on as many free cores: 200
scenarios of the learned planner behind its safety layer took 27 minutes with two
workers here, about twice that in one. Workers are spawned, not forked: a forked child
inherits the parent's OpenMP thread pool in an undefined state and can hang on its first
parallel region. Each rebuilds the task and loads the checkpoint once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .closed_loop import DriveResult, Policy, run_scenario
from .expert import BaselinePolicy, ExpertPolicy
from .policy import ABLATABLE, LearnedPolicy, load_planner
from .safety import safety_layer

__all__ = ["POLICIES", "ablation_names", "drive_policies", "make_policy"]

#: Policies ``suite drive evaluate --policies`` knows, besides the sensor ablations.
POLICIES = ("learned", "learned+safety", "expert", "baseline")


def ablation_names() -> list[str]:
    """``learned -camera`` etc.: the planner with one sensor zeroed."""
    return [f"learned -{s}" for s in ABLATABLE]


def make_policy(name: str, model: nn.Module | None) -> Policy:
    """A fresh policy (one per scenario: learned policies keep a sweep history).

    Args:
        name: One of :data:`POLICIES` or :func:`ablation_names`.
        model: The trained planner; needed by the learned policies only.
    """
    if name == "expert":
        return ExpertPolicy()
    if name == "baseline":
        return BaselinePolicy()
    if model is None:
        raise ValueError(f"policy {name!r} needs a trained planner")
    if name == "learned":
        return LearnedPolicy(model)
    if name == "learned+safety":
        return LearnedPolicy(model, name=name, guards=safety_layer())
    sensor = name.removeprefix("learned -")
    if sensor != name and sensor in ABLATABLE:
        return LearnedPolicy(model, drop=(sensor,))
    raise ValueError(f"unknown policy {name!r}; choose among {POLICIES} or {ablation_names()}")


@dataclass(frozen=True)
class _Job:
    policy: str
    index: int  # position in the policy's scenario list
    seed: int


class _Driver:
    """What one process needs to drive any job: the task and, when asked, the planner."""

    def __init__(self, task: Any, run: Path | None, quiet: bool = False) -> None:
        self.task = task
        self.model = load_planner(task, run, quiet=quiet) if run is not None else None
        self.sensors = task.sensor_config()

    def __call__(self, job: _Job) -> DriveResult:
        scenario = self.task.eval_scenario(job.seed)
        return run_scenario(scenario, make_policy(job.policy, self.model), self.sensors)


_worker: _Driver | None = None  # the driver of this worker process


def _start_worker(task_cls: type, cfg: Any, run: Path | None, threads: int) -> None:
    global _worker
    torch.set_num_threads(threads)
    _worker = _Driver(task_cls(cfg), run, quiet=True)


def _drive_in_worker(job: _Job) -> DriveResult:
    assert _worker is not None, "worker not started"
    return _worker(job)


def drive_policies(task: Any, run: Path | None, scenarios: dict[str, Sequence[int]],
                   workers: int = 1) -> dict[str, list[DriveResult]]:
    """Drive every policy through its scenarios; results in scenario order.

    Args:
        task: The driving task (its config gives scenarios and sensors).
        run: Run directory whose best checkpoint the learned policies use (``None``
            when only the expert and the baseline drive).
        scenarios: Seeds each policy drives, by policy name.
        workers: Processes driving at once; 1 drives here. Each worker uses
            ``cpu_count // workers`` (at least 1) threads for the network.

    Returns:
        One result per seed, by policy name.
    """
    jobs = [_Job(name, k, seed) for name, seeds in scenarios.items()
            for k, seed in enumerate(seeds)]
    results: dict[str, list[DriveResult]] = {name: [] for name in scenarios}

    def record(job: _Job, res: DriveResult) -> None:
        results[job.policy].append(res)
        done, total = job.index + 1, len(scenarios[job.policy])
        if done % 10 == 0 or done == total:
            print(f"{job.policy}: {done}/{total} scenarios", file=sys.stderr, flush=True)

    if workers <= 1:
        drive = _Driver(task, run)
        for job in jobs:
            record(job, drive(job))
        return results
    threads = max(1, (os.cpu_count() or 1) // workers)
    print(f"{len(jobs)} drives ({len(scenarios)} policies) in {workers} worker processes "
          f"({threads} thread(s) each)", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_start_worker,
                             initargs=(type(task), task.cfg, run, threads)) as pool:
        # map keeps the job order, so each policy's results stay in scenario order.
        for job, res in zip(jobs, pool.map(_drive_in_worker, jobs), strict=True):
            record(job, res)
    return results
