"""Dynamic batching for serving: concurrent requests merged into one forward pass.

Requests are queued; one worker thread takes the first waiting request, then keeps
collecting until ``max_batch`` requests are in hand or ``max_wait_s`` has passed
since the first one arrived, and runs them as one batch. With ``max_batch = 1`` every
request runs alone (the baseline that ``benchmarks/serve.py`` compares with).

With ``adaptive=True`` a request that arrives at an idle server runs at once: the
worker skips the wait when nothing is queued, nothing is announced (the HTTP layer
calls :meth:`DynamicBatcher.expect` when a request arrives, before its body is read
and decoded) and the previous batch held a single request. Under concurrent load
(previous batch > 1, or announced requests on their way) it waits up to ``max_wait_s``
as usual, because requests still in socket buffers are invisible to it.

One worker thread also means one forward pass at a time, so the model never runs
concurrently with itself (PyTorch modules are not guaranteed thread-safe, and CPU
intra-op threads are better spent on one large batch than on many small ones).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchStats", "DynamicBatcher"]


@dataclass
class BatchStats:
    """Counters a health endpoint reports."""

    requests: int = 0
    batches: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def add(self, size: int) -> None:
        self.requests += size
        self.batches += 1
        self.largest = max(self.largest, size)
        self.sizes[size] = self.sizes.get(size, 0) + 1


_STOP = object()


class DynamicBatcher:
    """Runs ``fn(items) -> results`` (same length, same order) on batches of submitted items.

    A result that is an ``Exception`` instance fails only its own request. If ``fn``
    raises for a whole batch, each item is retried alone so one bad request cannot
    fail the others.

    Args:
        fn: The batch function (called on the worker thread).
        max_batch: Most items per call (>= 1).
        max_wait_s: How long the first item of a batch waits for others to join.
        adaptive: Wait only while :meth:`expect` announced items not yet submitted.
    """

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = 32,
                 max_wait_s: float = 0.005, adaptive: bool = False) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.fn, self.max_batch, self.max_wait_s = fn, max_batch, max(0.0, max_wait_s)
        self.stats = BatchStats()
        self.adaptive = adaptive
        self._incoming = 0  # announced by expect(), not yet submitted or cancelled
        self._last_size = 1  # size of the previous batch: > 1 means concurrent load
        self._lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="suite-batcher", daemon=True)
        self._thread.start()

    def expect(self) -> None:
        """Announce an item that will be submitted (or cancelled) soon (adaptive mode)."""
        with self._lock:
            self._incoming += 1

    def cancel(self) -> None:
        """An announced item will not come after all (e.g. its request was malformed)."""
        with self._lock:
            self._incoming = max(0, self._incoming - 1)

    def submit(self, item: Any, expected: bool = False) -> Future[Any]:
        """Queue ``item``; the future resolves to its result (or raises its error).

        Args:
            item: The item for the batch function.
            expected: It was announced with :meth:`expect`.
        """
        if self._closed:
            if expected:
                self.cancel()
            raise RuntimeError("the batcher is closed")
        fut: Future[Any] = Future()
        self._queue.put((item, fut))
        if expected:
            self.cancel()  # announced -> queued (after the put: the worker never sees neither)
        return fut

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued work, then stop the worker."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # ------------------------------------------------------------------ worker
    def _collect(self, first: Any) -> tuple[list[Any], bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                # take what is already waiting without sleeping; wait only for the rest
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                idle = self._incoming == 0 and self._last_size <= 1 and len(batch) == 1
                if remaining <= 0 or (self.adaptive and idle):
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _STOP:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._collect(first)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[Any, Future[Any]]]) -> None:
        items = [item for item, _ in batch]
        self.stats.add(len(items))
        self._last_size = len(items)
        try:
            results = list(self.fn(items))
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for "
                                   f"{len(items)} requests")
        except Exception as exc:
            if len(items) == 1:
                results = [exc]
            else:  # find the culprit: every request alone
                results = []
                for item in items:
                    try:
                        results.append(self.fn([item])[0])
                    except Exception as single:
                        results.append(single)
        for (_, fut), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)
