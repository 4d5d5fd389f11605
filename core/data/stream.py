"""An exactly-once, deterministic, resumable stream over one split of a sharded data set.

How work is divided. The epoch order (:class:`~torchsuite.core.data._order.EpochOrder`)
maps every *global position* ``p`` of the epoch to a record, computably and without a
global permutation in memory. Consumers take positions, never shards:

* rank ``r`` of ``world`` ranks takes positions ``start + r + j * world`` for
  ``j = 0, 1, ...`` (its *local* sequence);
* inside a rank, DataLoader worker ``w`` of ``W`` takes the local items whose chunk
  ``j // chunk`` is ``w`` modulo ``W`` (``chunk`` = batch size under
  :class:`StreamLoader`, else 1).

So each record is served exactly once per epoch for any ranks x workers. Under
:class:`StreamLoader` the DataLoader's round-robin over workers reassembles the
rank's local sequence in order, so the batches a rank sees do not depend on the
number of workers.

Equal work per rank. With ``drop_last_to_equalize=True`` (the default, for
training) every rank gets ``remaining // world`` records, so every rank runs the
same number of batches and DDP never hangs; the up to ``world - 1`` leftover
positions of the epoch are skipped (different records each epoch, since the order
changes). Repeating records to pad would break exactly-once, so it is not offered.
With ``False`` (evaluation) the epoch is served completely and ranks may differ by
one record.

Resuming. The state is ``(epoch, consumed)`` where ``consumed`` is a global position:
everything before it was served. ``load_state_dict`` restarts at that position with
any number of workers (and ranks).

Example::

    from torchsuite.core.data import ShardStream, StreamLoader

    stream = ShardStream("data/mydata", "train", seed=0)
    loader = StreamLoader(stream, batch_size=32, num_workers=2, collate_fn=my_collate)
    for epoch in range(3):
        loader.set_epoch(epoch)
        for batch in loader:
            ...
            ckpt = {"stream": loader.state_dict()}     # resume: loader.load_state_dict(...)

With ``num_workers=0`` a plain ``DataLoader`` (or a ``for`` loop over the stream)
keeps the state too; with worker processes only :class:`StreamLoader` can see
what was delivered, so use it for resumable multi-worker loading.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import DataError
from ._order import EpochOrder
from .shards import ShardReader, read_manifest

if TYPE_CHECKING:
    from .preprocess.balance import BalancedOrder, SamplingPlan

__all__ = ["ShardStream", "StreamLoader", "rank_and_world"]

_STATE_VERSION = 1


def rank_and_world() -> tuple[int, int]:
    """This process's ``(rank, world_size)``: from torch.distributed if initialised, else
    the ``RANK``/``WORLD_SIZE`` variables torchrun sets, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ShardStream(IterableDataset):
    """Stream one split exactly once per epoch across ranks x workers, resumably.

    Args:
        data_dir: Data set directory (holding ``manifest.json``).
        split: Split name.
        shuffle: Shuffle (block shuffle + shuffle buffer); false keeps the stored order.
        seed: Shuffle seed; the order is a pure function of (manifest, seed, epoch).
        epoch: First epoch.
        shuffle_buffer: Records mixed together (the window of the block shuffle).
        block_size: Records per contiguous block (read locality vs. randomness).
        transform: Applied to each decoded record inside the worker.
        drop_last_to_equalize: Give every rank the same number of records by skipping
            the < world leftover positions of each epoch (training). False serves every
            record (evaluation), and ranks may get one record more or less.
        rank: Override the rank (default: from torch.distributed / torchrun env).
        world_size: Override the world size.
        batch_size: Chunk size for splitting a rank's sequence among workers; set by
            :class:`StreamLoader` to its batch size.
        sampling: A :class:`~torchsuite.core.data.preprocess.SamplingPlan` (class or bucket
            balancing): each epoch then has ``sampling.epoch_size`` positions served in the
            plan's target mix, each window of ``shuffle_buffer`` positions mixed
            (``shuffle`` and ``block_size`` do not apply). Still exactly once per
            *position*, deterministic and resumable; records repeat or are skipped as the
            mix requires.

    Raises:
        DataError: Missing manifest, unknown/empty split, wrong format version, or a plan
            built for another number of records.
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        *,
        shuffle: bool = True,
        seed: int = 0,
        epoch: int = 0,
        shuffle_buffer: int = 8192,
        block_size: int = 64,
        transform: Callable[[Any], Any] | None = None,
        drop_last_to_equalize: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        batch_size: int = 1,
        sampling: SamplingPlan | None = None,
    ) -> None:
        super().__init__()
        self.manifest = read_manifest(data_dir)
        self.split = split
        self.reader = ShardReader(self.manifest, split)
        self.num_records = len(self.reader)
        self.sampling = sampling
        if sampling is not None and sampling.num_records != self.num_records:
            raise DataError(
                f"The sampling plan has {sampling.num_records} labels but split {split!r} of "
                f"{self.manifest.path} has {self.num_records} records. Build the plan from "
                "this split's labels (read_labels(data_dir, split, key))."
            )
        # Positions per epoch: the records, or the plan's epoch size when re-weighting.
        self.epoch_size = sampling.epoch_size if sampling is not None else self.num_records
        self.shuffle = shuffle
        self.seed = int(seed)
        self.shuffle_buffer = int(shuffle_buffer)
        self.block_size = int(block_size)
        if self.shuffle_buffer < 1 or self.block_size < 1:
            raise ValueError("shuffle_buffer and block_size must be >= 1")
        self.transform = transform
        self.drop_last_to_equalize = drop_last_to_equalize
        self._rank = rank
        self._world = world_size
        self.batch_size = int(batch_size)
        self.epoch = int(epoch)
        self._start = 0  # global position the current pass starts at
        self._local = 0  # records of this rank consumed since _start
        self._counting_inside = True  # false while a StreamLoader does the counting

    # ------------------------------------------------------------------ layout
    def _world_info(self) -> tuple[int, int]:
        r, w = rank_and_world()
        r = self._rank if self._rank is not None else r
        w = self._world if self._world is not None else w
        if not 0 <= r < w:
            raise ValueError(f"rank {r} outside world of size {w}")
        return r, w

    def local_count(self, start: int | None = None) -> int:
        """Records this rank serves from global position ``start`` (default: the current
        pass start) to the end of the epoch."""
        rank, world = self._world_info()
        remaining = max(self.epoch_size - (self._start if start is None else start), 0)
        if self.drop_last_to_equalize:
            return remaining // world
        return remaining // world + (1 if rank < remaining % world else 0)

    def __len__(self) -> int:
        """Records this rank serves in a full epoch."""
        return self.local_count(0)

    def order(self, epoch: int | None = None) -> EpochOrder | BalancedOrder:
        """The epoch order (position -> record id) for ``epoch`` (default: current)."""
        if self.sampling is not None:
            return self.sampling.order(self.seed, self.epoch if epoch is None else epoch,
                                       self.shuffle_buffer)
        return EpochOrder(self.num_records, self.seed, self.epoch if epoch is None else epoch,
                          shuffle=self.shuffle, block_size=self.block_size,
                          window=self.shuffle_buffer)

    def positions(self) -> Iterator[np.ndarray]:
        """Record ids this consumer (rank x worker) serves in the current pass, in order,
        one array per window. Exposed for tests and tools."""
        rank, world = self._world_info()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        start = self._start
        count = self.local_count(start)
        if count == 0:
            return
        order = self.order()
        chunk = max(self.batch_size, 1)
        last_pos = start + rank + (count - 1) * world  # last global position of this rank
        for w in range(start // order.window, last_pos // order.window + 1):
            lo = w * order.window
            recs = order.window_records(w)
            p = lo + np.arange(len(recs), dtype=np.int64)
            rel = p - start - rank
            sel = (rel >= 0) & (rel % world == 0)
            j = rel // world
            sel &= j < count
            if nw > 1:
                sel &= (j // chunk) % nw == wid
            if sel.any():
                yield recs[sel]

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Any]:
        inside = self._counting_inside and get_worker_info() is None
        if inside and self._local >= self.local_count():
            # A finished pass: continue with the next epoch (set_epoch also works).
            self._advance_epoch()
        reader, transform = self.reader, self.transform
        # Read a window in batch-sized chunks: a window can span thousands of small shards,
        # and the first batch should not wait for all of them to be opened.
        chunk = max(self.batch_size, 128)
        for window_ids in self.positions():
            for lo in range(0, len(window_ids), chunk):
                for rec in reader.read_many(window_ids[lo:lo + chunk]):
                    if transform is not None:
                        rec = transform(rec)
                    if inside:
                        self._local += 1
                    yield rec

    def _advance_epoch(self) -> None:
        self.epoch += 1
        self._start = 0
        self._local = 0

    # ------------------------------------------------------------------ state
    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch`` from its beginning; a no-op if it is the current epoch
        (so calling it after :meth:`load_state_dict` keeps the resume position)."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self._start = 0
            self._local = 0

    def consumed(self) -> int:
        """Global position up to which the epoch has been served."""
        _, world = self._world_info()
        return self._start + self._local * world

    def state_dict(self) -> dict[str, Any]:
        """Plain-python state: the epoch, the consumed global position and what the order
        depends on (checked on load). Safe for ``torch.load(weights_only=True)``."""
        return {
            "version": _STATE_VERSION,
            "epoch": self.epoch,
            "consumed": self.consumed(),
            "seed": self.seed,
            "shuffle": self.shuffle,
            "shuffle_buffer": self.shuffle_buffer,
            "block_size": self.block_size,
            "num_records": self.num_records,
            "dataset_id": self.manifest.dataset_id,
            "split": self.split,
            "sampling": self.sampling.fingerprint() if self.sampling is not None else None,
            "epoch_size": self.epoch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state``'s epoch and position (any worker count, any world size).

        Raises:
            DataError: The state belongs to another data set/split, or to another order
                (seed, shuffle settings) — resuming would repeat or skip records.
        """
        if state.get("version") != _STATE_VERSION:
            raise DataError(f"Unknown stream state version {state.get('version')!r}.")
        mine = self.state_dict()
        for key in ("dataset_id", "split", "num_records", "seed", "shuffle",
                    "shuffle_buffer", "block_size", "sampling", "epoch_size"):
            # States saved before sampling existed lack the last two keys: default them.
            default = {"sampling": None, "epoch_size": self.num_records}.get(key)
            if state.get(key, default) != mine[key]:
                raise DataError(
                    f"Cannot resume the {self.split!r} stream of {self.manifest.path}: the "
                    f"saved state has {key}={state.get(key)!r} but this stream has "
                    f"{mine[key]!r}. Resume with the same data set and stream settings, or "
                    "start a fresh run."
                )
        consumed = int(state["consumed"])
        if not 0 <= consumed <= self.epoch_size:
            raise DataError(f"Stream state position {consumed} outside [0, {self.epoch_size}].")
        self.epoch = int(state["epoch"])
        self._start = consumed
        self._local = 0


class StreamLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ShardStream` that knows what it delivered.

    Workers split the rank's sequence in chunks of ``batch_size``, so batches arrive in
    the same order for any ``num_workers``; the loader counts delivered batches, so
    ``state_dict()`` (here or on the stream) is exact with worker processes.
    ``persistent_workers`` is refused: workers must see each epoch's start position.

    Args:
        dataset: The stream.
        batch_size: Records per batch (the last batch of an epoch may be smaller unless
            ``drop_last``).
        **kwargs: Passed to ``torch.utils.data.DataLoader`` (``num_workers``,
            ``collate_fn``, ``pin_memory``, ``prefetch_factor``, ...).
    """

    def __init__(self, dataset: ShardStream, batch_size: int = 1, **kwargs: Any) -> None:
        if not isinstance(dataset, ShardStream):
            raise TypeError("StreamLoader needs a ShardStream")
        if kwargs.get("persistent_workers"):
            raise ValueError("StreamLoader does not support persistent_workers=True")
        if batch_size is None or batch_size < 1:
            raise ValueError("StreamLoader needs batch_size >= 1")
        dataset.batch_size = int(batch_size)
        super().__init__(dataset, batch_size=batch_size, **kwargs)
        self.stream = dataset

    def __iter__(self) -> Iterator[Any]:
        s = self.stream
        bs = s.batch_size
        if s._local >= s.local_count():
            s._advance_epoch()
        total = s.local_count()
        s._counting_inside = False
        try:
            it = super().__iter__()
            for n, batch in enumerate(it, start=1):
                s._local = min(n * bs, total)
                yield batch
            if self.drop_last:  # the short tail batch was never delivered but is spent
                s._local = total
        finally:
            s._counting_inside = True

    def __len__(self) -> int:
        n = self.stream.local_count()
        bs = self.stream.batch_size
        return n // bs if self.drop_last else -(-n // bs)

    def set_epoch(self, epoch: int) -> None:
        """See :meth:`ShardStream.set_epoch`."""
        self.stream.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """See :meth:`ShardStream.state_dict`."""
        return self.stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """See :meth:`ShardStream.load_state_dict`."""
        self.stream.load_state_dict(state)
