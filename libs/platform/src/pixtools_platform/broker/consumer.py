"""The consumer loop every worker shares: decode, handle, publish with confirms, then ack.

A message is acked only after the handler's effects are durable and the events it returned are
confirmed. A consumer given a `Grouping` gathers the messages of some types that arrive within a few
milliseconds and hands them to one group handler (one transaction for all of them); it acks them all
after that handler returned, and should it fail, handles them again one by one, so that retries and
dead letters stay per message. Failures never spin in a hot requeue loop: they go to a delay queue with exponential
backoff, and after the last attempt (or at once, for poison and permanent errors) to the service's
dead-letter queue with the reason in its headers.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from pixtools_contracts import Event, UnknownEventType, parse_event
from pixtools_platform.broker.errors import PermanentError
from pixtools_platform.broker.messages import attempt_of, copy_message, log_ids, redeliveries
from pixtools_platform.broker.publisher import Publisher
from pixtools_platform.broker.retry import RetryPolicy
from pixtools_platform.broker.topology import DELIVERY_LIMIT, Topology
from pixtools_platform.logs import log_context
from pixtools_platform.telemetry import consumer_span

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[Sequence[Event]]]
"""A plain async function of an event that returns the events to publish."""

Outcome = Sequence[Event]

ExhaustedHook = Callable[[Event, str], Awaitable[Sequence[Event]]]
"""Called when a message is dead-lettered after being decoded: returns events to publish (e.g. a step failure)."""

GroupHandler = Callable[[Sequence[Event]], Awaitable[Sequence[Event]]]
"""Applies several events at once, all or nothing, in the order given; returns the events to publish."""


@dataclass(frozen=True)
class Grouping:
    """Which messages a consumer gathers for one group handler, and when a gathered group starts.

    A group starts `wait_s` after its first message when fewer than `concurrency` groups are running, else as
    soon as one of them ends (messages that arrive while the groups in hand run wait for them: the busier the
    consumer, the larger its groups), or at once when it reaches `size` messages.
    """

    handler: GroupHandler
    types: frozenset[str]
    size: int = 32
    wait_s: float = 0.0
    concurrency: int = 2


MESSAGES = Counter("pixtools_messages_total", "Messages consumed, by outcome.", ["service", "type", "outcome"])
HANDLE_SECONDS = Histogram(
    "pixtools_handle_seconds",
    "Time from delivery to ack.",
    ["service", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
GROUP_SIZE = Histogram(
    "pixtools_group_size",
    "Messages handled together by one group handler.",
    ["service", "outcome"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


class Consumer:
    """Consumes one service's queue with bounded concurrency, retries, dead letters and draining shutdown."""

    def __init__(
        self,
        *,
        connection: AbstractRobustConnection,
        publisher: Publisher,
        topology: Topology,
        service: str,
        routing_keys: Sequence[str],
        handlers: Mapping[str, Handler],
        retry: RetryPolicy,
        prefetch: int,
        on_exhausted: ExhaustedHook | None = None,
        grouping: Grouping | None = None,
    ) -> None:
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._service = service
        self._routing_keys = routing_keys
        self._handlers = handlers
        self._retry = retry
        self._prefetch = prefetch
        self._on_exhausted = on_exhausted
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._grouping = grouping
        self._gathered: list[AbstractIncomingMessage] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._groups_running = 0
        self._job_groups: dict[object, asyncio.Task[Any]] = {}

    async def start(self) -> None:
        """Declare the topology and begin consuming."""
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await self._topology.declare_service(
            self._channel, self._service, self._routing_keys, self._retry
        )
        self._tag = await self._queue.consume(self._spawn)
        log.info("consuming", extra={"queue": self._queue.name, "prefetch": self._prefetch})

    async def stop(self, drain_seconds: float) -> None:
        """Stop taking messages, let in-flight ones finish for up to `drain_seconds`, then close.

        Work still running after the deadline is cancelled; its messages are unacked and the broker
        returns them to the queue when the channel closes.
        """
        if self._queue is not None and self._tag is not None:
            await self._queue.cancel(self._tag)
        self._flush_group()
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=drain_seconds)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("drain deadline passed; returning unfinished messages", extra={"count": len(pending)})
                await asyncio.gather(*pending, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()

    @property
    def in_flight(self) -> int:
        """Messages being handled now."""
        return len(self._in_flight)

    async def _spawn(self, message: AbstractIncomingMessage) -> None:
        if self._grouping is None:
            self._track(self._process(message))
            return
        self._gathered.append(message)
        if len(self._gathered) >= self._grouping.size:
            self._flush_group()
        elif self._flush_timer is None and self._groups_running < self._grouping.concurrency:
            self._flush_timer = asyncio.get_running_loop().call_later(self._grouping.wait_s, self._flush_group)

    def _track(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _flush_group(self) -> None:
        """Hand the gathered messages to a task of their own; the next ones start a new group."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        messages, self._gathered = self._gathered, []
        if messages:
            self._groups_running += 1
            task = asyncio.ensure_future(self._process_group(messages))
            self._in_flight.add(task)
            task.add_done_callback(self._group_ended)

    def _group_ended(self, task: "asyncio.Future[None]") -> None:
        self._in_flight.discard(task)
        self._groups_running -= 1
        # What arrived while the groups ran has waited long enough: it starts now, as one group.
        if self._gathered and self._flush_timer is None:
            self._flush_group()

    async def _process_group(self, messages: list[AbstractIncomingMessage]) -> None:
        assert self._grouping is not None
        started = perf_counter()
        grouped: list[tuple[AbstractIncomingMessage, Event]] = []
        for message in messages:
            event = self._groupable(message)
            if event is None:
                # Undecodable, of another type, or on its last delivery: the one-by-one path knows what to do.
                self._track(self._process(message))
            else:
                grouped.append((message, event))
        if not grouped:
            return
        # A job's events keep their order across groups too: this group waits for earlier groups with its jobs.
        jobs = {event.job_id for _, event in grouped}
        earlier = {self._job_groups[job] for job in jobs if job in self._job_groups}
        current = asyncio.current_task()
        assert current is not None
        self._job_groups.update(dict.fromkeys(jobs, current))
        try:
            if earlier:
                await asyncio.wait(earlier)
            await self._apply_group(grouped, started)
        finally:
            for job in jobs:
                if self._job_groups.get(job) is current:
                    del self._job_groups[job]

    async def _apply_group(self, grouped: list[tuple[AbstractIncomingMessage, Event]], started: float) -> None:
        assert self._grouping is not None
        try:
            await self._publisher.publish_all(await self._grouping.handler([event for _, event in grouped]))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            GROUP_SIZE.labels(self._service, "failed").observe(len(grouped))
            log.warning(
                "group failed; handling its messages one by one",
                extra={"count": len(grouped), "error": repr(error)},
                exc_info=True,
            )
            for message, event in grouped:
                with consumer_span(f"{self._service} {event.type}", message.headers), log_context(**log_ids(event)):
                    await self._process_event(message, event, attempt_of(message), started)
            return
        # Acked only now: the group's effects committed together, so a crash before here redelivers all of them.
        for message, _ in grouped:
            await message.ack()
        elapsed = perf_counter() - started
        GROUP_SIZE.labels(self._service, "acked").observe(len(grouped))
        for _, event in grouped:
            MESSAGES.labels(self._service, event.type, "acked").inc()
            HANDLE_SECONDS.labels(self._service, event.type).observe(elapsed)
        log.info(
            "group handled",
            extra={"count": len(grouped), "duration_s": round(elapsed, 6), "consumer": self._service},
        )

    def _groupable(self, message: AbstractIncomingMessage) -> Event | None:
        """The message's event when it may join a group; None sends it down the one-by-one path."""
        assert self._grouping is not None
        if redeliveries(message) >= DELIVERY_LIMIT - 1:
            return None
        try:
            event = parse_event(message.body)
        except (ValidationError, UnknownEventType, ValueError):
            return None
        return event if event.type in self._grouping.types else None

    async def _process(self, message: AbstractIncomingMessage) -> None:
        started = perf_counter()
        attempt = attempt_of(message)
        try:
            event = parse_event(message.body)
        except (ValidationError, UnknownEventType, ValueError) as error:
            await self._settle(message, "poison", self._dead_letter(message, f"invalid message: {error}", attempt))
            return
        with consumer_span(f"{self._service} {event.type}", message.headers), log_context(**log_ids(event)):
            await self._process_event(message, event, attempt, started)

    async def _process_event(
        self, message: AbstractIncomingMessage, event: Event, attempt: int, started: float
    ) -> None:
        if redeliveries(message) >= DELIVERY_LIMIT - 1:
            # The broker has handed this message out again and again without a settlement (workers crashing on it):
            # give up ourselves on the last delivery, so the step is reported failed rather than silently dropped.
            reason = f"delivered {redeliveries(message) + 1} times without being settled"
            await self._settle(message, "dead_lettered", self._give_up(message, event, reason, attempt), event)
            return
        handler = self._handlers.get(event.type)
        if handler is None:
            reason = f"{self._service} has no handler for {event.type}"
            await self._settle(message, "poison", self._dead_letter(message, reason, attempt), event)
            return
        outcome = await self._handle(message, event, handler, attempt)
        elapsed = perf_counter() - started
        MESSAGES.labels(self._service, event.type, outcome).inc()
        HANDLE_SECONDS.labels(self._service, event.type).observe(elapsed)
        log.info(
            "message handled", extra={"outcome": outcome, "duration_s": round(elapsed, 6), "consumer": self._service}
        )

    async def _handle(self, message: AbstractIncomingMessage, event: Event, handler: Handler, attempt: int) -> str:
        try:
            events = await handler(event)
            await self._publisher.publish_all(events)
        except asyncio.CancelledError:
            raise
        except PermanentError as error:
            return await self._settle(message, "dead_lettered", self._give_up(message, event, str(error), attempt))
        except Exception as error:
            if attempt >= self._retry.max_attempts:
                reason = f"gave up after {attempt} attempts: {type(error).__name__}: {error}"
                log.error("retries exhausted", extra={"attempt": attempt, "error": repr(error)})
                return await self._settle(message, "dead_lettered", self._give_up(message, event, reason, attempt))
            log.warning("retrying", extra={"attempt": attempt, "error": repr(error)}, exc_info=True)
            return await self._settle(message, "retried", self._delay(message, attempt))
        await message.ack()
        return "acked"

    async def _settle(
        self, message: AbstractIncomingMessage, outcome: str, action: Awaitable[None], event: Event | None = None
    ) -> str:
        """Run a retry or dead-letter publish, then ack; if that publish fails, requeue for another try."""
        try:
            await action
        except Exception:
            log.exception("could not reroute message; requeueing it")
            await message.nack(requeue=True)
            return "requeued"
        await message.ack()
        if event is None:
            MESSAGES.labels(self._service, "unknown", outcome).inc()
        return outcome

    async def _give_up(self, message: AbstractIncomingMessage, event: Event, reason: str, attempt: int) -> None:
        if self._on_exhausted is not None:
            await self._publisher.publish_all(await self._on_exhausted(event, reason))
        await self._dead_letter(message, reason, attempt)

    async def _delay(self, message: AbstractIncomingMessage, attempt: int) -> None:
        tier, delay_ms = self._retry.delay_ms(attempt)
        retry = copy_message(message, {"x-attempt": attempt + 1})
        retry.expiration = timedelta(milliseconds=delay_ms)
        await self._publisher.publish_message(self._topology.delay_queue(self._service, tier), retry, exchange="")

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str, attempt: int) -> None:
        log.error("dead-lettering message", extra={"reason": reason, "message_id": message.message_id})
        dead = copy_message(
            message,
            {
                "x-attempt": attempt,
                "x-death-reason": reason[:2000],
                "x-death-service": self._service,
                "x-death-at": datetime.now(UTC).isoformat(),
                "x-original-routing-key": message.routing_key or "",
            },
        )
        await self._publisher.publish_message(self._service, dead, exchange=self._topology.dead_letters)
