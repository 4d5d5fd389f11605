"""The training batch stream: epochs, rank sharding and an exactly resumable position.

The trainer asks the task for ``task.dataloader("train", train=True)`` and wraps it
in :class:`TrainBatches`, which yields batches forever (epoch after epoch) and can
save/restore its position:

* A ``DataLoader`` over a **map-style** dataset with ordinary batching is rebuilt
  around :class:`ResumableSampler`: a seeded shuffle per epoch, split across
  ranks like ``DistributedSampler``, that can start mid-epoch. Its position is
  counted by the trainer (batches consumed), so prefetching workers do not skew it.
* Anything that has ``state_dict()/load_state_dict()`` — the loader itself
  (e.g. ``torchdata``'s StatefulDataLoader), its dataset (``ShardStream``) or its
  batch sampler — is saved and restored as is; ``set_epoch(e)`` is called on it
  at every epoch start.
* Otherwise resuming replays (skips) the batches already consumed in the epoch,
  which is exact for loaders whose order depends only on the epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler, SequentialSampler

from ..errors import DataError
from .distributed import DistEnv

__all__ = ["ResumableSampler", "TrainBatches"]


class ResumableSampler(Sampler[int]):
    """Per-epoch seeded permutation, this rank's share of it, from a start offset.

    Like ``DistributedSampler``: the permutation is padded (by repeating its head)
    to a multiple of ``world_size`` and rank ``r`` takes positions ``r, r+W, ...``,
    so the ranks together see the same global batches as one process would.
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int, rank: int = 0,
                 world_size: int = 1) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's permutation and start from its beginning."""
        self.epoch, self.start = epoch, 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank's share (mid-epoch resume)."""
        self.start = start

    def _indices(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        total = -(-self.size // self.world_size) * self.world_size
        order += order[: total - len(order)]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start :])

    def __len__(self) -> int:
        return -(-self.size // self.world_size) - self.start


def _rebuild(loader: DataLoader[Any], sampler: ResumableSampler) -> DataLoader[Any]:
    """Same loader settings, our sampler, and a private generator (worker seeds)."""
    extra: dict[str, Any] = {}
    if loader.num_workers > 0:
        extra = {"prefetch_factor": loader.prefetch_factor,
                 "persistent_workers": loader.persistent_workers,
                 "multiprocessing_context": loader.multiprocessing_context}
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler,
        num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, drop_last=loader.drop_last, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn, generator=torch.Generator(), **extra,
    )


class TrainBatches:
    """Endless training batches with a saveable position (see the module docstring)."""

    def __init__(self, loader: Iterable[Any], env: DistEnv, seed: int, task_name: str) -> None:
        self.env, self.seed, self.task_name = env, seed, task_name
        self.epoch = 0
        self.batch_in_epoch = 0
        self.sampler: ResumableSampler | None = None
        self._it: Iterator[Any] | None = None
        self._skip = 0
        self._pending: list[Any] = []  # a batch fetched early by load_state_dict
        if (isinstance(loader, DataLoader) and not isinstance(loader.dataset, IterableDataset)
                and loader.batch_size is not None):
            self.sampler = ResumableSampler(
                len(loader.dataset),  # type: ignore[arg-type]
                shuffle=not isinstance(loader.sampler, SequentialSampler), seed=seed,
                rank=env.rank, world_size=env.world_size,
            )
            loader = _rebuild(loader, self.sampler)
        elif env.distributed and not isinstance(loader, DataLoader | IterableDataset):
            warnings.warn(
                f"task '{task_name}': the train loader is not a DataLoader, so the trainer "
                "cannot split it across processes; make sure it yields each rank its own share.",
                stacklevel=2,
            )
        self.loader = loader
        self.stateful = self._find_stateful()

    def _candidates(self) -> list[Any]:
        objs = [self.loader]
        for name in ("dataset", "batch_sampler", "sampler"):
            obj = getattr(self.loader, name, None)
            if obj is not None and obj is not self.sampler:
                objs.append(obj)
        return objs

    def _find_stateful(self) -> Any:
        if self.sampler is not None:
            return None
        for obj in self._candidates():
            if callable(getattr(obj, "state_dict", None)) and callable(
                getattr(obj, "load_state_dict", None)
            ):
                return obj
        return None

    def _set_epoch(self) -> None:
        for obj in [*self._candidates(), self.sampler]:
            if obj is not None and callable(getattr(obj, "set_epoch", None)):
                obj.set_epoch(self.epoch)

    def _start(self, *, new_epoch: bool) -> None:
        if new_epoch:
            self._set_epoch()
        if self.sampler is not None:
            gen = getattr(self.loader, "generator", None)
            if isinstance(gen, torch.Generator):  # worker seeds: a function of (seed, epoch)
                gen.manual_seed(self.seed * 7919 + self.epoch)
        self._it = iter(self.loader)
        for _ in range(self._skip):
            next(self._it)
        self._skip = 0

    def next(self) -> Any:
        """The next training batch; rolls over to the next epoch at the end of one."""
        if self._it is None:
            self._start(new_epoch=True)
        assert self._it is not None
        try:
            batch = self._pending.pop() if self._pending else next(self._it)
        except StopIteration:
            if self.batch_in_epoch == 0:
                raise DataError(
                    f"the train split of task '{self.task_name}' yields no batches (rank "
                    f"{self.env.rank}); check that it is prepared and larger than one batch "
                    "(drop_last), or run `suite prepare` again."
                ) from None
            self.epoch += 1
            self.batch_in_epoch = 0
            self._start(new_epoch=True)
            return self.next()
        self.batch_in_epoch += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Position as primitives/tensors: epoch, batches consumed, and any loader state."""
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "loader": self.stateful.state_dict() if self.stateful is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; starts the iterator right away.

        Starting it here (not lazily) matters for bit-exact resume: creating a
        DataLoader iterator draws from the global torch RNG, and the trainer
        restores that RNG *after* this call, exactly as it was at the save. The
        first batch is fetched too, because loaders whose ``__iter__`` is a
        generator create their inner iterator only then.
        """
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self._set_epoch()
        if self.sampler is not None:
            assert self.loader is not None
            self.sampler.set_start(self.batch_in_epoch * int(self.loader.batch_size))  # type: ignore[attr-defined]
        elif self.stateful is not None and state.get("loader") is not None:
            self.stateful.load_state_dict(state["loader"])
        else:
            self._skip = self.batch_in_epoch
        self._start(new_epoch=False)
        assert self._it is not None
        try:
            self._pending = [next(self._it)]
        except StopIteration:  # saved exactly at the end of an epoch: next() rolls over
            self._it = iter(())
