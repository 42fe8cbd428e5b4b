"""Priority lanes: batch items (the bulk lane) wait behind single jobs (interactive) for queue slots and CPU.

Each stage consumes two queues, `<ns>.<service>` and `<ns>.<service>.bulk`, the bulk one with a small
prefetch, so a 1000-item batch holds only a few messages of a replica at a time. Work on the shared
CPU threads is then served interactive first, so bulk work already taken cannot delay a single job.
"""

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Self, TypeVar

from prometheus_client import Counter

from pixtools_contracts import Event, Lane
from pixtools_platform.broker import Handler
from pixtools_platform.progress import waiting_for_a_worker

T = TypeVar("T")

LANES: tuple[Lane, ...] = ("interactive", "bulk")

current_lane: ContextVar[Lane] = ContextVar("pixtools_lane", default="interactive")
"""The lane of the message being handled; the consumer runs each message in its own task, so this is per message."""

_PRIORITY: dict[Lane, int] = {"interactive": 0, "bulk": 1}

POOL_CPU_SECONDS = Counter(
    "pixtools_cpu_pool_seconds",
    "CPU time the pool's threads spent on the work handed to them: ingest's image operations, the GPU stages' "
    "decoding and encoding (their models run in their batchers).",
    ["pool"],
)


def lane_service(service: str, lane: Lane) -> str:
    """The consumer name of a service's lane: its queue, dead-letter queue and delay queues derive from it."""
    return f"{service}.bulk" if lane == "bulk" else service


def lane_routing_keys(routing_keys: Sequence[str], lane: Lane) -> list[str]:
    """The command routing keys of a lane, as the contracts derive them ('<key>.bulk' in the bulk lane)."""
    return [f"{key}.bulk" if lane == "bulk" else key for key in routing_keys]


def in_lane(lane: Lane, handler: Handler) -> Handler:
    """Run `handler` with `current_lane` set, so the CPU pool can tell bulk work from interactive work."""

    async def handle(event: Event) -> Sequence[Event]:
        token = current_lane.set(lane)
        try:
            return await handler(event)
        finally:
            current_lane.reset(token)

    return handle


class CpuPool:
    """Threads for codec and other CPU work, so it never runs on the event loop; interactive work goes first.

    A thread is handed out only when one is free, so nothing queues inside the executor: waiting work
    queues here, ordered by lane and then by arrival.
    """

    def __init__(self, threads: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._cpu_seconds = POOL_CPU_SECONDS.labels(name)
        self._free = threads
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()
        self._closed = False

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` on a pool thread once one is free (interactive before bulk) and return its result."""
        await self._acquire(_PRIORITY[current_lane.get()])
        try:
            submitted = self._executor.submit(self._timed, work)
        except BaseException:
            self._release()
            raise
        loop = asyncio.get_running_loop()
        submitted.add_done_callback(lambda _: _call_soon(loop, self._release))
        return await asyncio.wrap_future(submitted)

    def _timed(self, work: Callable[[], T]) -> T:
        # The thread's own CPU clock: time spent waiting for the GIL or a core is not counted.
        started = time.thread_time()
        try:
            return work()
        finally:
            self._cpu_seconds.inc(time.thread_time() - started)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish running work and drop queued work."""
        self._closed = True
        for _, _, waiter in self._waiting:
            waiter.cancel()
        self._waiting.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _acquire(self, priority: int) -> None:
        if self._closed:
            raise RuntimeError("the CPU pool is closed")
        # A free thread means nobody is waiting: _release hands threads to waiters before freeing them.
        if self._free > 0:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrival), waiter))
        try:
            # Queued work has not started: a slow-start announcement waits until the work has a thread.
            with waiting_for_a_worker():
                await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The thread was handed over just as this call was cancelled: pass it on.
                self._release()
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    # The loop may be gone when late work finishes at shutdown; then nobody waits for the thread.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)
