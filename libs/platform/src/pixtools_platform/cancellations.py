"""Which jobs are cancelled, as a stage replica learns it from the cancellations stream.

Stages keep no database. Every `job.cancelled.v1` also lands in the `<ns>.cancellations` stream,
which each replica reads from its first retained entry, so one started after a cancellation still
knows of it. A replica takes work only once it has read the stream to its end (a marker it published
itself comes back), and skips the queued steps of cancelled jobs without doing their work.
"""

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from prometheus_client import Counter
from pydantic import ValidationError

from pixtools_contracts import Event, JobCancelled, UnknownEventType, parse_event
from pixtools_platform.broker import Handler, Publisher, Topology
from pixtools_platform.broker.topology import CANCELLATIONS_MAX_AGE_S

log = logging.getLogger(__name__)

SKIPPED = Counter(
    "pixtools_steps_skipped_total", "Stage messages acked without doing their work, by reason.", ["service", "reason"]
)

STREAM_PREFETCH = 500
"""Unacked stream entries in flight; a stream consumer must set one, and a high one reads a long stream fast."""

MARKER_TYPE = "pixtools.cancellations.marker"


class CancelledJobs:
    """The ids of recently cancelled jobs, kept current by a consumer of the cancellations stream.

    Memory is bounded twice: entries older than the stream's retention are dropped (the stream no
    longer has them either), and beyond `limit` entries the oldest are forgotten. A forgotten job's
    queued steps are merely done in vain: the aggregator ignores results of cancelled jobs.
    """

    def __init__(
        self, topology: Topology, *, limit: int, max_age: timedelta = timedelta(seconds=CANCELLATIONS_MAX_AGE_S)
    ) -> None:
        self._topology = topology
        self._limit = limit
        self._max_age = max_age
        self._jobs: OrderedDict[UUID, datetime] = OrderedDict()
        self._marker = f"marker-{uuid.uuid4()}"
        self._caught_up = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    async def start(self, connection: AbstractRobustConnection, publisher: Publisher, *, timeout_s: float) -> bool:
        """Read the stream from its start and wait until caught up; False if that took longer than `timeout_s`.

        After a timeout the stream is still read in the background; until it is caught up, steps of
        jobs cancelled long ago may run in vain, which wastes work but loses nothing.
        """
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=STREAM_PREFETCH)
        await self._topology.declare_exchanges(self._channel)
        self._queue = await self._channel.get_queue(self._topology.cancellations)
        self._tag = await self._queue.consume(self._receive, arguments={"x-stream-offset": "first"})
        marker = aio_pika.Message(b"", message_id=self._marker, type=MARKER_TYPE)
        await publisher.publish_message(self._topology.cancellations, marker, exchange="")
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout_s)
        except TimeoutError:
            log.warning("cancellations stream not caught up; taking work anyway", extra={"known": len(self)})
            return False
        log.info("cancellations stream caught up", extra={"known": len(self)})
        return True

    async def stop(self) -> None:
        """Stop reading the stream."""
        if self._queue is not None and self._tag is not None:
            await self._queue.cancel(self._tag)
        if self._channel is not None:
            await self._channel.close()

    def add(self, job_id: UUID, cancelled_at: datetime) -> None:
        """Remember a cancelled job, forgetting entries past the stream's retention or beyond the limit."""
        self._jobs[job_id] = cancelled_at
        self._jobs.move_to_end(job_id)
        horizon = datetime.now(UTC) - self._max_age
        while self._jobs and (len(self._jobs) > self._limit or next(iter(self._jobs.values())) < horizon):
            self._jobs.popitem(last=False)

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        # Recorded before the first await, so by the time the marker is seen every earlier entry is known.
        if message.message_id == self._marker:
            self._caught_up.set()
        elif message.type != MARKER_TYPE:
            self._record(message.body)
        await message.ack()

    def _record(self, body: bytes) -> None:
        try:
            event = parse_event(body)
        except (ValidationError, UnknownEventType, ValueError) as error:
            log.warning("ignoring unreadable cancellations stream entry", extra={"error": str(error)})
            return
        if isinstance(event, JobCancelled):
            self.add(event.job_id, event.occurred_at)


def skip_cancelled(handler: Handler, cancelled: CancelledJobs, service: str) -> Handler:
    """Skip messages of cancelled jobs; for a job cancelled while it ran, request no next step."""

    async def handle(event: Event) -> Sequence[Event]:
        if event.job_id in cancelled:
            SKIPPED.labels(service, "cancelled").inc()
            log.info("skipping work of a cancelled job", extra={"type": event.type})
            return []
        events = await handler(event)
        if event.job_id in cancelled:
            # Its outcome still goes out (the aggregator ignores it); commands would start work nobody wants.
            log.info("job cancelled while its step ran; requesting no next step", extra={"type": event.type})
            return [outcome for outcome in events if outcome.fanout]
        return events

    return handle
