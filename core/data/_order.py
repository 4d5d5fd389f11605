"""Epoch order as a pure function: position -> record id, computable window by window.

The order of epoch ``e`` over a split of ``n`` records is built in three steps,
none of which holds a permutation of all ``n`` records in memory:

1. **Blocks.** Records are cut into blocks of ``block_size`` consecutive records
   (after rotating the record ids by a random per-epoch offset, so the one short
   tail block is a different range each epoch). The full blocks are permuted by a
   keyed Feistel network with cycle walking: a bijection on ``[0, num_blocks)``
   evaluated per block, O(1) memory. Contiguous blocks keep reads local.
2. **Windows.** The permuted block sequence is cut into windows of
   ``window`` records (a multiple of ``block_size``; this is the "shuffle buffer").
3. **Shuffle buffer.** Inside each window the positions are permuted with a
   generator seeded by ``(seed, epoch, window)``, mixing ``window / block_size``
   random blocks. Memory: one window of int64.

Because position ``p`` maps to a record without any history, a stream can start
anywhere (resume) and any number of consumers can each compute their own share.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EpochOrder", "feistel_permute"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def feistel_permute(x: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """Apply a keyed pseudo-random bijection of ``[0, n)`` to every element of ``x``.

    A balanced Feistel network on the smallest even bit width covering ``n``
    (a bijection on ``[0, 2**bits)``), restricted to ``[0, n)`` by cycle walking:
    re-encrypt until the value falls inside. Since the domain is at most 4n, few
    walks are needed.

    Args:
        x: Integers in ``[0, n)``.
        n: Domain size.
        keys: One uint64 round key per Feistel round.

    Returns:
        ``perm(x)`` as int64, same shape as ``x``.
    """
    x = np.asarray(x, dtype=np.uint64)
    if n <= 1:
        return x.astype(np.int64)
    bits = max(2, int(n - 1).bit_length())
    bits += bits & 1
    half = np.uint64(bits // 2)
    mask = np.uint64((1 << (bits // 2)) - 1)

    def enc(v: np.ndarray) -> np.ndarray:
        left, right = v >> half, v & mask
        for k in keys:
            left, right = right, left ^ (_mix(right ^ k) & mask)
        return (left << half) | right

    y = enc(x)
    out = y >= np.uint64(n)
    while out.any():
        y[out] = enc(y[out])
        out = y >= np.uint64(n)
    return y.astype(np.int64)


class EpochOrder:
    """The record order of one epoch.

    Args:
        n: Records in the split.
        seed: Shuffle seed.
        epoch: Epoch number.
        shuffle: If false, the order is the identity.
        block_size: Records per contiguous block.
        window: Shuffle-buffer size in records (rounded up to a multiple of ``block_size``).
    """

    def __init__(self, n: int, seed: int, epoch: int, *, shuffle: bool = True,
                 block_size: int = 64, window: int = 8192) -> None:
        if block_size < 1 or window < 1:
            raise ValueError("block_size and window must be >= 1")
        self.n = int(n)
        self.shuffle = shuffle
        self.block = int(block_size)
        self.window = -(-int(window) // self.block) * self.block
        self.seed = int(seed)
        self.epoch = int(epoch)
        ss = np.random.SeedSequence([self.seed & (2**63 - 1), self.epoch, 0x0B10C])
        state = ss.generate_state(5, np.uint64)
        self._keys = state[:4]
        self._rot = int(state[4] % np.uint64(max(self.n, 1)))
        self._full_blocks = self.n // self.block

    @property
    def num_windows(self) -> int:
        """Windows in the epoch."""
        return -(-self.n // self.window)

    def window_records(self, w: int) -> np.ndarray:
        """Record ids at positions ``[w * window, min((w + 1) * window, n))`` (int64)."""
        lo = w * self.window
        hi = min(lo + self.window, self.n)
        if lo >= hi:
            return np.zeros(0, np.int64)
        if not self.shuffle:
            return np.arange(lo, hi, dtype=np.int64)
        rng = np.random.default_rng([self.seed & (2**63 - 1), self.epoch, w, 0x5EED])
        v = lo + rng.permutation(hi - lo)  # positions inside this window, shuffled
        slot, off = np.divmod(v, self.block)
        blk = slot.copy()
        full = slot < self._full_blocks
        blk[full] = feistel_permute(slot[full], self._full_blocks, self._keys)
        # slot == full_blocks is the short tail block; it stays in the last window.
        return (blk * self.block + off + self._rot) % self.n
