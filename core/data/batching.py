"""Token-budget bucketing and padding collate for variable-length sequences.

Random batches of variable-length sequences waste compute on padding. Bucketing
reads ``bucket_size`` samples, sorts them by length and cuts batches whose padded
size ``batch_size * longest`` stays within ``max_tokens``; batches are then
shuffled (within the bucket) so training does not see lengths in order. Memory
is one bucket.

Example::

    from torchsuite.core.data import ShardStream, TokenBudgetBatcher, pad_collate

    stream = ShardStream("data/wmt", "train")
    batches = TokenBudgetBatcher(stream, length_fn=lambda r: len(r["src"]), max_tokens=4096)
    for samples in batches:
        src, src_mask = pad_collate([r["src"] for r in samples], pad_value=0)
        print(src.shape, padding_ratio(src_mask))

For a map-style data set with known lengths use :class:`TokenBudgetBatchSampler` as a
``DataLoader(batch_sampler=...)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import IterableDataset, Sampler

__all__ = [
    "TokenBudgetBatchSampler",
    "TokenBudgetBatcher",
    "pad_collate",
    "padding_ratio",
    "token_budget_batches",
]

T = TypeVar("T")


def token_budget_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_batch_size: int | None = None,
) -> list[list[int]]:
    """Cut positions into batches by a padded-token budget, shortest first.

    Args:
        lengths: Length of each item.
        max_tokens: Upper bound on ``len(batch) * max(length in batch)``. An item longer
            than the budget forms a batch of its own.
        max_batch_size: Optional cap on items per batch.

    Returns:
        Batches of indices into ``lengths`` (each batch sorted by length).
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        n = max(int(lengths[i]), 1)
        longest = max(cur_max, n)
        full = max_batch_size is not None and len(cur) >= max_batch_size
        if cur and (full or (len(cur) + 1) * longest > max_tokens):
            batches.append(cur)
            cur, longest = [], n
        cur.append(i)
        cur_max = longest
    if cur:
        batches.append(cur)
    return batches


class TokenBudgetBatcher(IterableDataset, Generic[T]):
    """Group a stream of samples into length-bucketed batches under a token budget.

    Usable directly (``for batch in TokenBudgetBatcher(...)``) or as an
    ``IterableDataset`` in ``DataLoader(batcher, batch_size=None, collate_fn=...)``;
    with workers, each worker buckets its own share of an underlying
    :class:`~torchsuite.core.data.ShardStream`.

    Args:
        samples: Any iterable of samples (a stream, a list, a map-style data set).
        length_fn: Tokens of one sample.
        max_tokens: Budget on ``batch_size * longest`` per batch.
        bucket_size: Samples sorted together (more: less padding, more memory).
        max_batch_size: Optional cap on samples per batch.
        shuffle: Shuffle batch order within each bucket.
        seed: Seed of that shuffle (the k-th bucket uses ``(seed, k)``).
    """

    def __init__(
        self,
        samples: Iterable[T],
        length_fn: Callable[[T], int],
        max_tokens: int,
        bucket_size: int = 1024,
        *,
        max_batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if bucket_size < 1:
            raise ValueError("bucket_size must be >= 1")
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        self.samples = samples
        self.length_fn = length_fn
        self.max_tokens = int(max_tokens)
        self.bucket_size = int(bucket_size)
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed

    def _emit(self, bucket: list[T], k: int) -> Iterator[list[T]]:
        lengths = [int(self.length_fn(s)) for s in bucket]
        batches = token_budget_batches(lengths, self.max_tokens, self.max_batch_size)
        if self.shuffle:
            random.Random(f"{self.seed}/{k}").shuffle(batches)
        for b in batches:
            yield [bucket[i] for i in b]

    def __iter__(self) -> Iterator[list[T]]:
        bucket: list[T] = []
        k = 0
        for s in self.samples:
            bucket.append(s)
            if len(bucket) >= self.bucket_size:
                yield from self._emit(bucket, k)
                bucket, k = [], k + 1
        if bucket:
            yield from self._emit(bucket, k)

    # Let a trainer drive epochs and checkpoints through the batcher; the position is
    # the underlying stream's (resumption granularity: the bucket being built).
    def set_epoch(self, epoch: int) -> None:
        """Forward to the underlying stream, if it has ``set_epoch``."""
        if hasattr(self.samples, "set_epoch"):
            self.samples.set_epoch(epoch)  # type: ignore[attr-defined]


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Token-budget batches of indices for a map-style data set with known lengths.

    Args:
        lengths: Length of every item of the data set.
        max_tokens: Budget on ``batch_size * longest`` per batch.
        bucket_size: Indices (in shuffled order) sorted together.
        max_batch_size: Optional cap on items per batch.
        shuffle: Shuffle items before bucketing and batches after; reshuffled per epoch.
        seed: Base seed; call :meth:`set_epoch` for a new order each epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        bucket_size: int = 1024,
        *,
        max_batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        self.lengths = list(lengths)
        self.max_tokens = int(max_tokens)
        self.bucket_size = int(bucket_size)
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch``."""
        self.epoch = int(epoch)

    def _batches(self) -> list[list[int]]:
        idx = list(range(len(self.lengths)))
        rng = random.Random(f"{self.seed}/{self.epoch}")
        if self.shuffle:
            rng.shuffle(idx)
        out: list[list[int]] = []
        for lo in range(0, len(idx), self.bucket_size):
            bucket = idx[lo:lo + self.bucket_size]
            bl = [self.lengths[i] for i in bucket]
            batches = token_budget_batches(bl, self.max_tokens, self.max_batch_size)
            out.extend([bucket[i] for i in b] for b in batches)
        if self.shuffle:
            rng.shuffle(out)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def pad_collate(
    seqs: Sequence[torch.Tensor], pad_value: float = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad variable-length sequences along their first dimension.

    Args:
        seqs: Tensors of shape ``[T_i, *feature]`` (same feature shape and dtype).
        pad_value: Fill value for padding.

    Returns:
        ``(padded, mask)``: ``padded`` is ``[B, T, *feature]`` with ``T = max T_i``;
        ``mask`` is ``[B, T]`` bool, true on real positions.
    """
    if len(seqs) == 0:
        raise ValueError("pad_collate needs at least one sequence")
    seqs = [torch.as_tensor(s) for s in seqs]
    lengths = torch.tensor([s.shape[0] for s in seqs])
    padded = pad_sequence(seqs, batch_first=True, padding_value=pad_value)  # [B, T, ...]
    mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]  # [B, T]
    return padded, mask


def padding_ratio(mask_or_lengths: torch.Tensor | Sequence[Any]) -> float:
    """Fraction of padded positions: from a ``[B, T]`` bool mask, or from a list of batches
    given as lists of lengths (``[[3, 5], [7]]``) — padded size ``len(b) * max(b)`` each."""
    if isinstance(mask_or_lengths, torch.Tensor):
        m = mask_or_lengths
        return 0.0 if m.numel() == 0 else 1.0 - float(m.sum()) / m.numel()
    real = total = 0
    for b in mask_or_lengths:
        b = [int(x) for x in b]
        if b:
            real += sum(b)
            total += len(b) * max(b)
    return 0.0 if total == 0 else 1.0 - real / total
