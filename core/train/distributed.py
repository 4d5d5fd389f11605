"""torch.distributed under ``torchrun``: process setup, model wrapping, agreement.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous
variables; :func:`setup` reads them and joins the process group (gloo on CPU,
nccl on CUDA). Without them the run is a single process and every helper here
is a no-op, so the trainer has one code path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import SuiteError

__all__ = ["DistEnv", "all_gather_objects", "any_flag", "average_gradients", "broadcast_buffers",
           "broadcast_object", "launch_command", "mean_across", "setup", "teardown", "wrap_model"]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SuiteError(
                f"train.device={name} but CUDA is not available; use train.device=cpu."
            )
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def setup(device_name: str) -> DistEnv:
    """Join the process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _pick_device(device_name, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    return DistEnv(rank, world, local_rank, device)


def teardown(env: DistEnv) -> None:
    """Leave the process group (after a barrier so no rank exits mid-collective)."""
    if env.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, env: DistEnv, strategy: str,
               find_unused_parameters: bool = False) -> nn.Module:
    """DDP (a full copy per process) or FSDP2 ``fully_shard`` (parameters sharded).

    FSDP shards every direct child module that holds parameters and then the root,
    the usual granularity for stacks of blocks. Returns ``model`` unchanged for a
    single process.
    """
    if not env.distributed:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for child in model.children():
            if any(p.requires_grad for p in child.parameters()):
                fully_shard(child)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [env.device.index] if env.device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def any_flag(env: DistEnv, *flags: bool) -> list[bool]:
    """For each flag: is it set on any process? (one small all_reduce)."""
    if not env.distributed:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def mean_across(env: DistEnv, values: Sequence[float]) -> list[float]:
    """Average numbers over processes (for honest logging of the global loss)."""
    if not env.distributed:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [v / env.world_size for v in t.tolist()]


def average_gradients(env: DistEnv, params: Sequence[nn.Parameter]) -> None:
    """Average ``params``' gradients over processes in one flat all_reduce.

    Used instead of DDP where a step trains only some parameters (the phases of a
    multi-optimizer task). A parameter without a gradient counts as zeros, so
    every process joins with the same tensor size.
    """
    if not env.distributed or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= env.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def broadcast_buffers(env: DistEnv, model: nn.Module) -> None:
    """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every process."""
    if not env.distributed:
        return
    for buf in model.buffers():
        dist.broadcast(buf, src=0)


def broadcast_object(env: DistEnv, obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (used for per-rank RNG and data state)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def launch_command(nproc: int, cli_args: Sequence[str]) -> list[str]:
    """The torchrun command line that runs ``suite <cli_args>`` on ``nproc`` local processes."""
    if nproc < 1:
        raise SuiteError(f"--nproc must be at least 1, got {nproc}.")
    # `python -m torch.distributed.run` is torchrun, bound to this interpreter's torch.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "torchsuite.core.cli", *cli_args]
