"""Micro-batching: items submitted from many coroutines share one call of a batch function on a worker thread."""

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Histogram

__all__ = ["BatcherClosed", "MicroBatcher"]

In = TypeVar("In")
Out = TypeVar("Out")

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_WAIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_FORWARD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

BATCH_SIZE = Histogram("pixtools_batch_size", "Items per dispatched batch.", ["name"], buckets=_SIZE_BUCKETS)
BATCH_WAIT_SECONDS = Histogram(
    "pixtools_batch_wait_seconds",
    "How long the oldest item of a batch waited before the batch was dispatched.",
    ["name"],
    buckets=_WAIT_BUCKETS,
)
ITEMS_PROCESSED = Counter("pixtools_batch_items_total", "Items run through the batch function.", ["name"])
FORWARD_SECONDS = Histogram(
    "pixtools_batch_forward_seconds",
    "Time spent in one call of the batch function.",
    ["name"],
    buckets=_FORWARD_BUCKETS,
)


class BatcherClosed(RuntimeError):
    """The batcher is not running: it was never started, or it is closing."""


@dataclass(slots=True)
class _Pending(Generic[In, Out]):
    item: In
    future: "asyncio.Future[Out]"
    enqueued_at: float


class MicroBatcher(Generic[In, Out]):
    """Gathers items into batches of up to `max_batch`, waiting at most `max_wait_s`, and runs them on one thread."""

    def __init__(
        self, run_batch: Callable[[list[In]], list[Out]], *, max_batch: int, max_wait_s: float, name: str
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._name = name
        self._pending: deque[_Pending[In, Out]] = deque()
        self._condition = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            raise RuntimeError(f"batcher {self._name!r} is already started")
        self._stopped = asyncio.get_running_loop().create_future()
        self._thread = threading.Thread(target=self._work, name=f"batcher-{self._name}", daemon=True)
        self._thread.start()

    async def submit(self, item: In) -> Out:
        """Run one item as part of a batch and return its result."""
        (result,) = await self.submit_many([item])
        return result

    async def submit_many(self, items: Sequence[In]) -> list[Out]:
        """Run several items, queued together so they batch with each other and with other callers' items."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Out]] = [loop.create_future() for _ in items]
        now = time.monotonic()
        with self._condition:
            if self._thread is None or self._closing:
                raise BatcherClosed(f"batcher {self._name!r} is not started or is closing")
            self._pending.extend(_Pending(item, future, now) for item, future in zip(items, futures, strict=True))
            self._condition.notify()
        # Cancelling the caller cancels these futures, and the worker then skips the items it has not started.
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        """Stop accepting items, finish every pending one without waiting out `max_wait_s`, then stop the thread."""
        if self._thread is None or self._stopped is None:
            return
        with self._condition:
            self._closing = True
            self._condition.notify()
        await asyncio.shield(self._stopped)

    def _work(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._run(batch)
        finally:
            if self._stopped is not None:
                _deliver(self._stopped, _resolve, None)

    def _next_batch(self) -> list[_Pending[In, Out]] | None:
        """Block until a batch is due (full, oldest item old enough, or closing); None once closed and drained."""
        with self._condition:
            while True:
                while self._pending and self._pending[0].future.done():
                    self._pending.popleft()  # its caller was cancelled before the item was started
                if self._pending:
                    waited = time.monotonic() - self._pending[0].enqueued_at
                    if self._closing or len(self._pending) >= self._max_batch or waited >= self._max_wait_s:
                        return self._take()
                    self._condition.wait(self._max_wait_s - waited)
                elif self._closing:
                    return None
                else:
                    self._condition.wait()

    def _take(self) -> list[_Pending[In, Out]]:
        batch: list[_Pending[In, Out]] = []
        while self._pending and len(batch) < self._max_batch:
            pending = self._pending.popleft()
            if not pending.future.done():
                batch.append(pending)
        return batch

    def _run(self, batch: list[_Pending[In, Out]]) -> None:
        started = time.monotonic()
        BATCH_SIZE.labels(self._name).observe(len(batch))
        BATCH_WAIT_SECONDS.labels(self._name).observe(started - batch[0].enqueued_at)
        try:
            results = self._run_batch([pending.item for pending in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function of {self._name!r} returned {len(results)} results for {len(batch)}")
        except Exception as error:  # the error belongs to this batch's callers; the thread goes on
            for pending in batch:
                _deliver(pending.future, _fail, error)
            return
        finally:
            FORWARD_SECONDS.labels(self._name).observe(time.monotonic() - started)
        ITEMS_PROCESSED.labels(self._name).inc(len(batch))
        for pending, result in zip(batch, results, strict=True):
            _deliver(pending.future, _resolve, result)


def _deliver(future: "asyncio.Future[Any]", settle: Callable[..., None], value: object) -> None:
    """Settle a future from the worker thread on the loop that owns it."""
    # A closed loop raises RuntimeError; then nobody is left waiting for the value.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(settle, future, value)


def _resolve(future: "asyncio.Future[Out]", result: Out) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: "asyncio.Future[Out]", error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
