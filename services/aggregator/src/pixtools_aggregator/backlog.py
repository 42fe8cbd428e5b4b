"""Samples shared backlogs into gauges on an interval: the outbox, the webhook breakers and every consuming queue."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pixtools_aggregator import metrics
from pixtools_aggregator.dispatcher import endpoint_host
from pixtools_contracts import OPERATIONS
from pixtools_platform.broker import Topology
from pixtools_platform.broker.depths import QueueDepth
from pixtools_platform.lanes import LANES, lane_service

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "disabled"]
QueueRole = Literal["work", "dead_letter"]


@dataclass(frozen=True)
class DatabaseBacklog:
    """The outbox backlog and the webhook endpoints' breakers, as one read of the database found them."""

    unpublished: int
    oldest_age_s: float | None
    breakers: dict[BreakerState, int]
    tripped: Sequence[tuple[str, BreakerState]]
    """(url, state) of each endpoint whose breaker is open or disabled."""


@dataclass(frozen=True)
class WatchedQueue:
    """A queue whose depth is sampled: its name, its consumer (service or lane) and its role."""

    name: str
    consumer: str
    role: QueueRole


def watched_queues(topology: Topology, aggregator: str) -> list[WatchedQueue]:
    """The work and dead-letter queues of both lanes of every stage, and the aggregator's own."""
    stages = sorted({operation.service for operation in OPERATIONS.values()})
    consumers = [lane_service(stage, lane) for stage in stages for lane in LANES] + [aggregator]
    return [
        queue
        for consumer in consumers
        for queue in (
            WatchedQueue(topology.queue(consumer), consumer, "work"),
            WatchedQueue(topology.dead_letter_queue(consumer), consumer, "dead_letter"),
        )
    ]


class BacklogSampler:
    """Every `interval_s`, reads the database and queue backlogs and sets the aggregator's backlog gauges."""

    def __init__(
        self,
        *,
        read_database: Callable[[], Awaitable[DatabaseBacklog]],
        read_queues: Callable[[Sequence[str]], Awaitable[dict[str, QueueDepth]]],
        queues: Sequence[WatchedQueue],
        interval_s: float,
    ) -> None:
        self._read_database = read_database
        self._read_queues = read_queues
        self._queues = queues
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        """Sample now and then on every interval, in the background."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="backlog-sampler")

    async def stop(self) -> None:
        """Stop sampling; a sample in hand is abandoned."""
        if self._task is not None:
            # The flag as well as the cancel: the broker client may swallow a cancellation while closing a channel.
            self._stopping.set()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sample_once(self) -> None:
        """Read both backlogs and set the gauges; a queue that does not exist yet reads as empty."""
        backlog = await self._read_database()
        depths = await self._read_queues([queue.name for queue in self._queues])
        metrics.OUTBOX_UNPUBLISHED.set(backlog.unpublished)
        metrics.OUTBOX_OLDEST_AGE_SECONDS.set(backlog.oldest_age_s or 0.0)
        for state in ("closed", "open", "disabled"):
            metrics.WEBHOOK_BREAKERS.labels(state).set(backlog.breakers.get(state, 0))
        tripped: dict[tuple[str, str], int] = {}
        for url, state in backlog.tripped:
            key = (endpoint_host(url), state)
            tripped[key] = tripped.get(key, 0) + 1
        # Cleared first, so a host whose breaker closed again disappears instead of lingering at its last value.
        metrics.WEBHOOK_BREAKERS_TRIPPED.clear()
        for (host, state), count in tripped.items():
            metrics.WEBHOOK_BREAKERS_TRIPPED.labels(host, state).set(count)
        empty = QueueDepth(ready=0, consumers=0)
        for queue in self._queues:
            depth = depths.get(queue.name, empty)
            metrics.QUEUE_MESSAGES.labels(queue.consumer, queue.role).set(depth.ready)
            metrics.QUEUE_CONSUMERS.labels(queue.consumer, queue.role).set(depth.consumers)
        metrics.BACKLOG_SAMPLED.set(time.time())

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Stale gauges show in pixtools_backlog_sampled_timestamp_seconds; the next round tries again.
                log.warning("backlog sampling failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval_s)
