"""The training loop.

One function's worth of logic, :meth:`Trainer.fit`, reads top to bottom::

    build model -> (resume) -> wrap for DDP/FSDP -> optimizer, schedule, scaler
    repeat until max_steps:
        for each phase (one optimizer; a plain task has exactly one):
            steps x update:
                grad_accum x (batch -> augment -> forward under autocast -> backward)
                unscale, clip, NaN/Inf guard, optimizer step
        every phase's scheduler steps
        log every log_every; evaluate every eval_every (best / early stopping);
        checkpoint at evaluations, every checkpoint_every, on SIGINT/SIGTERM
    callbacks (:mod:`.callbacks`) are told at fit start/end, each step, each evaluation
    and each checkpoint; one may request a stop

A task with several optimizers (a GAN: generator and discriminator) defines
``configure_optimizers`` and ``adversarial_step`` instead of ``training_step``;
see :mod:`.adversarial` for the update schedule (alternating, n_critic).

Everything else lives in small helpers: :mod:`.optim` (param groups, schedules),
:mod:`.precision` (autocast + GradScaler), :mod:`.checkpoint` (atomic files, RNG),
:mod:`.data` (resumable batch stream), :mod:`.distributed` (torchrun) and
:mod:`.logs` (metrics.jsonl, TensorBoard, progress).

Under ``torchrun`` every process runs this same loop; only rank 0 writes, and
decisions (stop on a signal, NaN, early stopping) are agreed with an all_reduce.
The task's ``training_step`` receives the DDP-wrapped model, so it should call
the model rather than reach into its attributes.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import to_dict
from ..errors import ConfigError, DataError, SuiteError
from ..runs import write_run_config
from ..task import Task
from . import distributed as dist_utils
from .adversarial import Phase, build_phases, is_multi_optimizer
from .callbacks import Callback, TrainState, resolve_callbacks, state_keys
from .checkpoint import (
    FORMAT,
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
)
from .data import TrainBatches
from .distributed import DistEnv
from .logs import MetricsLog, Progress
from .optim import build_optimizer, build_scheduler, decayed_parameters, l1_penalty
from .precision import Precision

__all__ = ["FitResult", "Trainer", "TrainingDiverged", "fit", "seed_everything"]


class TrainingDiverged(SuiteError):
    """The loss or gradient became NaN/Inf; nothing after the last good checkpoint was saved."""


@dataclass
class FitResult:
    """What a finished (or stopped) fit reports."""

    run_dir: Path
    steps: int
    last_loss: float
    dev_metrics: dict[str, float] = field(default_factory=dict)
    best_metric: float | None = None
    best_step: int | None = None
    best_checkpoint: Path | None = None
    stopped_early: bool = False
    interrupted: int = 0  # the signal number that stopped the run (0: it was not interrupted)
    stop_reason: str = ""  # why training ended before max_steps (early stopping, a callback)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors in (nested) tuples/lists/dicts to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor (0 if none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    values: Iterable[Any] = batch.values() if isinstance(batch, dict) else (
        batch if isinstance(batch, (list, tuple)) else ())
    for v in values:
        n = _batch_size(v)
        if n:
            return n
    return 0


class _Signals:
    """Turns SIGINT/SIGTERM into a flag checked once per step (a second SIGINT aborts)."""

    def __init__(self) -> None:
        self.received = 0
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _grad_sync(net: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on accumulation micro-batches (DDP / FSDP2)."""
    if enabled:
        yield
    elif isinstance(net, nn.parallel.DistributedDataParallel):
        with net.no_sync():
            yield
    elif hasattr(net, "set_requires_gradient_sync"):
        net.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            net.set_requires_gradient_sync(True)
    else:
        yield


def _grad_norm(params: list[nn.Parameter], clip: float) -> float:
    """Global gradient norm, clipping to ``clip`` first when ``clip > 0``."""
    if clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor
        norm = norm.full_tensor()
    return float(norm)


@dataclass
class _Best:
    """Best monitored value so far and evaluations without improvement."""

    key: str
    mode: str
    value: float | None = None
    step: int | None = None
    bad_evals: int = 0

    def update(self, metrics: dict[str, float], step: int) -> bool:
        if self.key not in metrics:
            raise SuiteError(
                f"train.monitor='{self.key}' is not among the dev metrics "
                f"({', '.join(sorted(metrics))}); pick one of those."
            )
        v = metrics[self.key]
        better = self.value is None or (v < self.value if self.mode == "min" else v > self.value)
        if better and math.isfinite(v):
            self.value, self.step, self.bad_evals = v, step, 0
            return True
        self.bad_evals += 1
        return False


class Trainer:
    """Drives a :class:`~torchsuite.core.task.Task` through training (see module docstring).

    Args:
        task: The task, bound to its resolved config (``cfg.train``, ``cfg.optim``).
        run_dir: Where metrics, checkpoints and TensorBoard events go.
        resume_from: A checkpoint file, or a run directory whose latest
            ``step-N.pt`` to continue from.
        callbacks: :class:`~torchsuite.core.train.callbacks.Callback` objects, called
            after the ones ``train.callbacks`` names.
    """

    def __init__(self, task: Task[Any], run_dir: Path, *, resume_from: Path | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.task = task
        self.cfg: Any = task.cfg
        self.run_dir = Path(run_dir)
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.callbacks: list[Callback] = list(callbacks)

    # ------------------------------------------------------------------ setup helpers
    def _resume_checkpoint(self) -> tuple[dict[str, Any], Path] | None:
        if self.resume_from is None:
            return None
        path = self.resume_from
        if path.is_dir():
            found = latest_checkpoint(path)
            if found is None:
                raise SuiteError(
                    f"cannot resume from '{path}': it has no checkpoints/step-N.pt (the run "
                    "stopped before its first save). Start a fresh run instead."
                )
            path = found
        return load_checkpoint(path), path

    def _dev_loader(self) -> Iterable[Any] | None:
        try:
            return self.task.dataloader("dev", train=False)
        except DataError:
            return None

    def _evaluate(self, model: nn.Module, loader: Iterable[Any], env: DistEnv,
                  precision: Precision) -> dict[str, float]:
        """Weighted mean of ``validation_step`` loss/metrics (+ the task's evaluate())."""
        tcfg = self.cfg.train
        model.eval()
        totals: dict[str, float] = {}
        weight = 0.0
        with torch.no_grad(), precision.autocast():
            for i, batch in enumerate(loader):
                if tcfg.eval_batches and i >= tcfg.eval_batches:
                    break
                out = self.task.validation_step(model, to_device(batch, env.device))
                w = float(out.weight)
                weight += w
                totals["loss"] = totals.get("loss", 0.0) + float(out.loss) * w
                for k, v in out.metrics.items():
                    totals[k] = totals.get(k, 0.0) + float(v) * w
            metrics = {f"dev.{k}": v / weight for k, v in totals.items()} if weight else {}
            if tcfg.eval_task_metrics and type(self.task).evaluate is not Task.evaluate:
                for k, v in self.task.evaluate(model, "dev").items():
                    metrics[f"dev.{k}"] = float(v)
        model.train()
        return dist_utils.broadcast_object(env, metrics)  # every rank decides on rank 0's numbers

    def _model_state(self, model: nn.Module, env: DistEnv) -> dict[str, torch.Tensor]:
        if env.distributed and self.cfg.train.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            return get_model_state_dict(
                model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return model.state_dict()

    def _optim_state(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                     env: DistEnv) -> dict[str, Any]:
        if env.distributed and self.cfg.train.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_optimizer_state_dict,
            )

            return get_optimizer_state_dict(
                model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return optimizer.state_dict()

    def _load_optim_state(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                          state: dict[str, Any], env: DistEnv) -> None:
        if env.distributed and self.cfg.train.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_optimizer_state_dict,
            )

            set_optimizer_state_dict(model, optimizer, state,
                                     options=StateDictOptions(full_state_dict=True))
            return
        optimizer.load_state_dict(state)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> FitResult:
        """Train until ``train.max_steps``, early stopping, a signal or divergence."""
        env = dist_utils.setup(self.cfg.train.device)
        ok = False
        try:
            result = self._fit(env)
            ok = True
            return result
        finally:
            if ok:
                dist_utils.teardown(env)
            elif env.distributed and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    def _check_resumable(self, ckpt: dict[str, Any], path: Path, multi: bool,
                         phases: list[Phase]) -> None:
        """Refuse checkpoints this run cannot continue exactly, saying why."""
        if int(ckpt.get("format", FORMAT)) > FORMAT:
            raise SuiteError(f"checkpoint '{path}' has format {ckpt['format']}, newer than this "
                             f"torchsuite reads ({FORMAT}); upgrade torchsuite to resume it.")
        saved_optim = (ckpt.get("config") or {}).get("optim", {}).get("name")
        if saved_optim and saved_optim != self.cfg.optim.name:
            raise SuiteError(
                f"checkpoint '{path}' holds {saved_optim} optimizer state but the config now "
                f"says optim.name={self.cfg.optim.name}; resume with optim.name={saved_optim} "
                "or start a fresh run."
            )
        names = [p.name for p in phases]
        if multi and "optimizers" not in ckpt:
            raise SuiteError(
                f"checkpoint '{path}' was written by a single-optimizer run, but task "
                f"'{self.task.name}' now trains optimizers {names}; start a fresh run."
            )
        if multi and sorted(ckpt["optimizers"]) != sorted(names):
            raise SuiteError(
                f"checkpoint '{path}' holds optimizers {sorted(ckpt['optimizers'])} but task "
                f"'{self.task.name}' defines {names}; resume with the configuration that wrote "
                "it or start a fresh run."
            )
        if not multi and "optimizer" not in ckpt:
            raise SuiteError(
                f"checkpoint '{path}' was written by a multi-optimizer (adversarial) run, but "
                f"task '{self.task.name}' now trains one optimizer; start a fresh run."
            )

    def _load_phases(self, model: nn.Module, phases: list[Phase], ckpt: dict[str, Any],
                     env: DistEnv, multi: bool, path: Path) -> None:
        """Optimizer, schedule and scaler states of every phase from ``ckpt``."""
        for phase in phases:
            if multi:
                optim, sched = ckpt["optimizers"][phase.name], ckpt["schedulers"][phase.name]
                scaler = (ckpt.get("scalers") or {}).get(phase.name)
            else:
                optim, sched, scaler = ckpt["optimizer"], ckpt["scheduler"], ckpt.get("scaler")
            try:
                if multi:
                    phase.optimizer.load_state_dict(optim)
                else:
                    self._load_optim_state(model, phase.optimizer, optim, env)
            except (ValueError, KeyError) as exc:
                raise SuiteError(
                    f"checkpoint '{path}': the optimizer state of '{phase.name}' does not fit "
                    f"the current model/config ({exc}); resume with the run's own config or "
                    "start a fresh run."
                ) from None
            phase.scheduler.load_state_dict(sched)
            if scaler and phase.scaler.is_enabled():
                phase.scaler.load_state_dict(scaler)

    def _fit(self, env: DistEnv) -> FitResult:
        task, tcfg, ocfg = self.task, self.cfg.train, self.cfg.optim
        main = env.is_main
        # named callbacks first (an unknown name fails before anything is written)
        callbacks = [*resolve_callbacks(getattr(tcfg, "callbacks", ())), *self.callbacks]
        cb_keys = state_keys(callbacks)
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not (self.run_dir / "config.toml").exists():
                write_run_config(self.run_dir, self.cfg, task.name)

        # Model, then (resume) weights, then the wrapper, then the optimizer(s) over its params.
        seed_everything(tcfg.seed)  # identical initial weights on every rank
        model = task.build_model().to(env.device)
        resumed = self._resume_checkpoint()
        if resumed:
            load_model_state(model, resumed[0], task=task.name, path=resumed[1])
        precision = Precision.resolve(tcfg.precision, env.device)
        multi = is_multi_optimizer(task)
        if multi:
            if env.distributed and tcfg.strategy == "fsdp":
                raise ConfigError(
                    f"task '{task.name}' trains several optimizers, which train.strategy=fsdp "
                    "does not support; use train.strategy=ddp."
                )
            net = model  # phases train disjoint parameters: gradients are averaged by hand
            phases = build_phases(task, model, ocfg, tcfg.max_steps, tcfg.clip_grad_norm,
                                  env.device.type, precision.dtype is torch.float16)
        else:
            net = dist_utils.wrap_model(model, env, tcfg.strategy, tcfg.find_unused_parameters)
            optimizer = build_optimizer(model, ocfg)
            phases = [Phase(
                name="main", optimizer=optimizer,
                scheduler=build_scheduler(optimizer, ocfg, tcfg.max_steps),
                scaler=precision.grad_scaler(),
                params=[p for p in model.parameters() if p.requires_grad],
                l1_params=decayed_parameters(model)[0] if ocfg.l1 > 0 else [],
                clip=tcfg.clip_grad_norm,
            )]
        if resumed:
            self._check_resumable(resumed[0], resumed[1], multi, phases)
        if tcfg.compile and multi:
            for child in model.children():  # in place: the task indexes the model's parts
                child.compile()
        elif tcfg.compile:
            net = torch.compile(net)
        seed_everything(tcfg.seed + env.rank)  # distinct dropout/augmentation per rank
        batches = TrainBatches(task.dataloader("train", train=True), env, tcfg.seed, task.name)
        dev_loader = self._dev_loader()
        if multi and dev_loader is not None and all(
                getattr(type(task), m) is getattr(Task, m)
                for m in ("validation_step", "training_step")):
            raise SuiteError(
                f"task '{task.name}' trains several optimizers and has a dev split but no "
                "validation_step(model, batch); define it to return the dev loss/metrics to "
                "monitor (e.g. a distance between generated and real samples)."
            )
        best = _Best(tcfg.monitor if tcfg.monitor.startswith("dev.")
                     else f"dev.{tcfg.monitor or 'loss'}", tcfg.monitor_mode)
        step, last_saved = 0, None
        if resumed:
            ckpt, last_saved = resumed
            self._load_phases(model, phases, ckpt, env, multi, last_saved)
            step = int(ckpt["step"])
            tr = ckpt.get("trainer", {})
            best.value, best.step, best.bad_evals = tr.get("best"), tr.get("best_step"), int(
                tr.get("bad_evals", 0))
            ranks = ckpt["ranks"]
            mine = ranks[env.rank] if len(ranks) == env.world_size else ranks[0]
            batches.load_state_dict(mine["data"])  # starts the iterator; must precede the RNG
            if len(ranks) == env.world_size:
                restore_rng(mine["rng"])
            else:
                seed_everything(tcfg.seed + 1000 * step + env.rank)

        log = MetricsLog(self.run_dir, enabled=main, tensorboard=tcfg.tensorboard)
        progress = Progress(tcfg.progress, tcfg.max_steps, step, enabled=main,
                            every=tcfg.log_every)
        if resumed:
            log.truncate_after(step)
            log.write({"step": step, "event": "resumed", "checkpoint": str(resumed[1])})
            progress.note(f"resumed from {resumed[1]} at step {step}")
        cb_state = TrainState(model=model, config=self.cfg, run_dir=self.run_dir, step=step,
                              max_steps=tcfg.max_steps, rank=env.rank,
                              world_size=env.world_size, strategy=tcfg.strategy, _log=log.write)
        for cb in callbacks:
            cb.on_fit_start(cb_state)
        if resumed:
            saved_cbs = resumed[0].get("callbacks") or {}
            for key, cb in zip(cb_keys, callbacks, strict=True):
                if key in saved_cbs:
                    cb.load_state_dict(saved_cbs[key])
                elif cb.state_dict():
                    progress.note(f"callback '{key}' has no state in {resumed[1]}; it starts "
                                  f"afresh at step {step}")

        def save(is_best: bool) -> Path | None:
            """All ranks take part (state gathering); rank 0 writes."""
            per_rank = dist_utils.all_gather_objects(
                env, {"rng": capture_rng(), "data": batches.state_dict()})
            model_state = self._model_state(model, env)
            optim_state = None if multi else self._optim_state(model, phases[0].optimizer, env)
            if not main:
                return None
            state: dict[str, Any] = {
                "format": FORMAT, "task": task.name, "config": to_dict(self.cfg), "step": step,
                "epoch": batches.epoch, "world_size": env.world_size, "model": model_state,
                "ranks": per_rank, "metrics": dev,
                "trainer": {"best": best.value, "best_step": best.step,
                            "bad_evals": best.bad_evals},
            }
            cb_saved = {k: cb.state_dict() for k, cb in zip(cb_keys, callbacks, strict=True)}
            if any(cb_saved.values()):
                state["callbacks"] = {k: v for k, v in cb_saved.items() if v}
            if multi:
                state["optimizers"] = {p.name: p.optimizer.state_dict() for p in phases}
                state["schedulers"] = {p.name: p.scheduler.state_dict() for p in phases}
                state["scalers"] = {p.name: p.scaler.state_dict() if p.scaler.is_enabled()
                                    else None for p in phases}
            else:
                state["optimizer"] = optim_state
                state["scheduler"] = phases[0].scheduler.state_dict()
                state["scaler"] = (phases[0].scaler.state_dict()
                                   if phases[0].scaler.is_enabled() else None)
            path = save_checkpoint(state, self.run_dir, step, is_best=is_best,
                                   keep_last=tcfg.keep_last)
            for cb in callbacks:
                cb.on_checkpoint(path)
            return path

        keep_batches = any(p.reuse_batch for p in phases)
        drawn: list[Any] = []  # the last update's micro-batches, for reuse_batch phases

        def micro_batches(phase: Phase) -> Iterator[Any]:
            nonlocal samples
            if phase.reuse_batch and drawn:
                yield from list(drawn)
                return
            drawn.clear()
            for _ in range(tcfg.grad_accum):
                batch = task.augment(to_device(batches.next(), env.device))
                samples += _batch_size(batch)
                if keep_batches:
                    drawn.append(batch)
                yield batch

        def update(phase: Phase) -> tuple[float, float, bool, dict[str, Any]]:
            """One optimizer update of ``phase``: accumulate, unscale, clip, guard, step."""
            loss_sum = torch.zeros((), device=env.device)
            metrics: dict[str, Any] = {}
            with phase.toggled():
                for micro, batch in enumerate(micro_batches(phase)):
                    with _grad_sync(net, micro == tcfg.grad_accum - 1):
                        with precision.autocast():
                            if multi:
                                out = task.adversarial_step(net, batch, phase.name)  # type: ignore[attr-defined]
                            else:
                                out = task.training_step(net, batch)
                            loss = out.loss
                            if phase.l1_params:
                                loss = loss + ocfg.l1 * l1_penalty(phase.l1_params)
                        phase.scaler.scale(loss / tcfg.grad_accum).backward()
                    loss_sum += out.loss.detach().float()
                    metrics = out.metrics
            if multi:
                dist_utils.average_gradients(env, phase.params)
            phase.scaler.unscale_(phase.optimizer)
            grad_norm = _grad_norm(phase.params, phase.clip)
            loss_value = loss_sum.item() / tcfg.grad_accum
            diverged = not math.isfinite(loss_value) or (
                not phase.scaler.is_enabled() and not math.isfinite(grad_norm))
            stop_signal = bool(signals.received)
            if env.distributed:
                diverged, stop_signal = dist_utils.any_flag(env, diverged, stop_signal)
            if diverged:
                what = f" ({phase.name} optimizer)" if multi else ""
                log.write({"step": step + 1, "event": "diverged", "phase": phase.name,
                           "train.loss": str(loss_value), "grad_norm": str(grad_norm)})
                raise TrainingDiverged(
                    f"training of '{task.name}' diverged at step {step + 1}{what}: loss "
                    f"{loss_value}, gradient norm {grad_norm}. Nothing after the last "
                    f"good checkpoint ({last_saved or 'none yet'}) was saved. Try a "
                    f"lower optim.lr (now {ocfg.lr}), more optim.warmup_steps, "
                    "train.clip_grad_norm, or train.precision=fp32; resume with "
                    f"--resume {self.run_dir}."
                )
            phase.scaler.step(phase.optimizer)
            phase.scaler.update()
            if multi:
                model.zero_grad(set_to_none=True)  # also grads of parameters no phase owns
            else:
                phase.optimizer.zero_grad(set_to_none=True)
            return loss_value, grad_norm, stop_signal, metrics

        dev: dict[str, float] = {}
        loss_value = grad_norm = float("nan")
        stopped_early, interrupted, stop_reason = False, 0, ""
        t_last, samples = time.perf_counter(), 0
        try:
            with _Signals() as signals:
                net.train()
                while step < tcfg.max_steps:
                    stop_signal = False
                    drawn.clear()
                    if multi:  # what DDP does for a plain task: rank 0's BatchNorm statistics
                        dist_utils.broadcast_buffers(env, model)
                    round_log: dict[str, Any] = {}
                    for phase in phases:
                        if not phase.active(step):
                            continue
                        losses = []
                        for _ in range(phase.steps):
                            loss_value, grad_norm, stop, metrics = update(phase)
                            losses.append(loss_value)
                            stop_signal = stop_signal or stop
                        if multi:
                            round_log[f"train.{phase.name}.loss"] = sum(losses) / len(losses)
                            round_log[f"grad_norm.{phase.name}"] = grad_norm
                            round_log[f"lr.{phase.name}"] = phase.scheduler.get_last_lr()[0]
                            round_log.update({f"train.{phase.name}.{k}": (
                                v.detach() if isinstance(v, torch.Tensor) else v)
                                for k, v in metrics.items()})
                    with warnings.catch_warnings():
                        # A GradScaler that skipped an inf/NaN step (or a phase that did
                        # not update this round) leaves the optimizer unstepped: expected.
                        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler")
                        for phase in phases:
                            phase.scheduler.step()
                    step += 1
                    cb_state.step = step
                    if callbacks:
                        step_metrics = {"train.loss": loss_value, "grad_norm": grad_norm,
                                        "lr": phases[0].scheduler.get_last_lr()[0]}
                        for cb in callbacks:
                            cb.on_step_end(step, dict(step_metrics))

                    if step % tcfg.log_every == 0 or step == tcfg.max_steps:
                        keys = [k for k in round_log if k.startswith("train.")]
                        means = dist_utils.mean_across(
                            env, [loss_value, *(float(round_log[k]) for k in keys)])
                        round_log.update(zip(keys, means[1:], strict=True))
                        now = time.perf_counter()
                        rate = samples * env.world_size / max(now - t_last, 1e-9)
                        t_last, samples = now, 0
                        log.write({"step": step, "epoch": batches.epoch, "train.loss": means[0],
                                   "lr": phases[0].scheduler.get_last_lr()[0],
                                   "grad_norm": grad_norm, "samples_per_s": round(rate, 2),
                                   **round_log})
                        progress.update(step, means[0], rate)
                    else:
                        progress.update(step, None, None)

                    evaluate = step == tcfg.max_steps or (
                        tcfg.eval_every > 0 and step % tcfg.eval_every == 0)
                    is_best = False
                    if evaluate and dev_loader is not None:
                        for cb in callbacks:
                            cb.on_evaluate_start(step)
                        dev = self._evaluate(model, dev_loader, env, precision)
                        is_best = best.update(dev, step)
                        log.write({"step": step, **dev})
                        progress.note(f"step {step}: " + " ".join(
                            f"{k} {v:.4f}" for k, v in dev.items()))
                        for cb in callbacks:
                            cb.on_evaluate(step, dict(dev))
                        stopped_early = 0 < tcfg.patience <= best.bad_evals
                        if stopped_early:
                            stop_reason = (f"early stopping: {best.key} has not improved for "
                                           f"{best.bad_evals} evaluations")
                    if callbacks:  # a stop requested by a callback on any rank stops all
                        cb_stop = dist_utils.any_flag(env, bool(cb_state.stop_reason))[0]
                        if cb_stop and not stopped_early:
                            stopped_early = True
                            stop_reason = cb_state.stop_reason or "a callback on another rank"
                    checkpoint = tcfg.checkpoints and (
                        evaluate or stop_signal or stopped_early
                        or (tcfg.checkpoint_every > 0 and step % tcfg.checkpoint_every == 0))
                    if checkpoint:
                        last_saved = save(is_best) or last_saved
                    if stop_signal:
                        interrupted = signals.received or signal.SIGTERM
                        progress.note(
                            f"stopped by {signal.Signals(interrupted).name} at step {step}; "
                            f"checkpoint {last_saved}; continue with "
                            f"`suite train {task.name} --resume {self.run_dir}`")
                        break
                    if stopped_early:
                        if stop_reason.startswith("early stopping"):
                            progress.note(f"early stop at step {step}: {best.key} has not "
                                          f"improved for {best.bad_evals} evaluations (best "
                                          f"{best.value} at step {best.step})")
                        else:
                            progress.note(f"stopped at step {step} by a callback: {stop_reason}")
                            log.write({"step": step, "event": "stopped", "reason": stop_reason})
                        break
        finally:
            progress.close()
            log.close()

        best_file = self.run_dir / "checkpoints" / "best.pt"
        if main:
            where = f"checkpoints in {self.run_dir / 'checkpoints'}" if tcfg.checkpoints else (
                "no checkpoints (train.checkpoints=false)")
            print(f"wrote metrics to {log.path}; {where}", flush=True)
        result = FitResult(
            run_dir=self.run_dir, steps=step, last_loss=loss_value, dev_metrics=dev,
            best_metric=best.value, best_step=best.step,
            best_checkpoint=best_file if best_file.exists() else last_saved,
            stopped_early=stopped_early, interrupted=int(interrupted), stop_reason=stop_reason,
        )
        for cb in callbacks:
            cb.on_fit_end(result)
        if main and not interrupted:
            task.on_fit_end(self.run_dir, model)  # samples, plots: the task's own epilogue
        return result


def fit(task: Task[Any], run_dir: Path, *, resume_from: Path | None = None,
        callbacks: Sequence[Callback] = ()) -> FitResult:
    """Train ``task`` and write everything into ``run_dir`` (see :class:`Trainer`).

    Args:
        task: The task, bound to its resolved config.
        run_dir: Where metrics and checkpoints go.
        resume_from: A checkpoint file or run directory to continue from.
        callbacks: Extra :class:`~torchsuite.core.train.callbacks.Callback` objects,
            called after those ``train.callbacks`` names.

    Returns:
        The :class:`FitResult`.
    """
    return Trainer(task, run_dir, resume_from=resume_from, callbacks=callbacks).fit()
