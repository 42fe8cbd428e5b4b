"""The broker adapter: the aggregator's queue, its bindings, and which handler applies each event."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from aio_pika.abc import AbstractRobustConnection

from pixtools_aggregator import metrics
from pixtools_aggregator.errors import UnknownJob, UnknownStep
from pixtools_aggregator.handlers import (
    Applied,
    Dependencies,
    apply_step_completed,
    apply_step_failed,
    apply_step_started,
)
from pixtools_aggregator.job_control import apply_job_cancelled, apply_source_failed, apply_source_fetched
from pixtools_aggregator.ports import JobRepository, OutputLinks
from pixtools_contracts import (
    Event,
    JobCancelled,
    SourceFailed,
    SourceFetched,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from pixtools_platform.broker import Consumer, GroupHandler, Grouping, PermanentError, Publisher, RetryPolicy, Topology
from pixtools_platform.broker.messages import log_ids
from pixtools_platform.logs import log_context
from pixtools_platform.routing import Routes, event_routing_keys, route, type_of
from pixtools_platform.telemetry import consumer_span, current_trace_context

log = logging.getLogger(__name__)

SERVICE = "aggregator"

Transactions = Callable[[], AbstractAsyncContextManager[JobRepository]]
"""Opens a repository in a new transaction that commits when the block succeeds."""

E = TypeVar("E", bound=Event)


def build_consumer(
    *,
    connection: AbstractRobustConnection,
    publisher: Publisher,
    topology: Topology,
    retry: RetryPolicy,
    prefetch: int,
    transactions: Transactions,
    links: OutputLinks | None = None,
    group_size: int = 1,
    group_wait_s: float = 0.0,
    group_concurrency: int = 2,
    group_transactions: Transactions | None = None,
) -> Consumer:
    """The consumer of `<namespace>.aggregator`; job events are applied in one transaction, then acked.

    With `group_size` above 1, step events share transactions, up to `group_size` in one: those that arrive within
    `group_wait_s`, and those that arrive while `group_concurrency` groups are being applied; a group runs in
    `group_transactions` (by default `transactions`). The other events, and the step events of a group that failed,
    go one at a time.
    """
    routes = job_event_routes(transactions, links)
    grouping = None
    if group_size > 1:
        grouping = Grouping(
            handler=step_event_group(group_transactions or transactions, links),
            types=frozenset(type_of(kind) for kind in GROUPED),
            size=group_size,
            wait_s=group_wait_s,
            concurrency=group_concurrency,
        )
    return Consumer(
        connection=connection,
        publisher=publisher,
        topology=topology,
        service=SERVICE,
        routing_keys=event_routing_keys(routes),
        handlers=routes,
        retry=retry,
        prefetch=prefetch,
        grouping=grouping,
    )


def job_event_routes(transactions: Transactions, links: OutputLinks | None = None) -> Routes:
    """Each consumed event type and the handler that applies it; the queue's bindings derive from them."""

    def applying(handler: Callable[[E, Dependencies], Awaitable[Applied]]) -> Callable[[E], Awaitable[Sequence[Event]]]:
        return _in_transaction(handler, transactions, links)

    return dict(
        [
            route(StepStarted, applying(apply_step_started)),
            route(StepCompleted, applying(apply_step_completed)),
            route(StepFailed, applying(apply_step_failed)),
            route(SourceFetched, applying(apply_source_fetched)),
            route(SourceFailed, applying(apply_source_failed)),
            route(JobCancelled, applying(apply_job_cancelled)),
        ]
    )


GROUPED: tuple[type[StepStarted | StepCompleted | StepFailed], ...] = (StepStarted, StepCompleted, StepFailed)
"""The events applied in groups: the many small step results. Job control events stay one per transaction."""

_STEP_HANDLERS: dict[str, Callable[[Any, Dependencies], Awaitable[Applied]]] = {
    type_of(StepStarted): apply_step_started,
    type_of(StepCompleted): apply_step_completed,
    type_of(StepFailed): apply_step_failed,
}


def step_event_group(transactions: Transactions, links: OutputLinks | None = None) -> GroupHandler:
    """Applies a group of step events in one transaction, in order within each job; all of them or none.

    Events are taken in job id order (stable, so each job's events keep their order), which is also the order
    `prepare` locks the jobs in. Any error rolls the whole group back; the consumer then applies them one by one.
    """

    async def handle(events: Sequence[Event]) -> Sequence[Event]:
        ordered = sorted(events, key=lambda event: event.job_id)
        now = datetime.now(UTC)
        async with transactions() as jobs:
            await jobs.prepare(ordered)
            applied = [(event, await _apply_traced(event, jobs, now, links)) for event in ordered]
        for event, outcome in applied:
            _record(event, outcome)
        return ()

    return handle


async def _apply_traced(event: Event, jobs: JobRepository, now: datetime, links: OutputLinks | None) -> Applied:
    """Apply one event of a group in a span of its own, continuing the trace its envelope carries (as the message
    headers do), so that its terminal event and webhook carry the aggregator's span like a lone event's would."""
    pairs = (("traceparent", event.traceparent), ("tracestate", event.tracestate))
    carrier = {key: value for key, value in pairs if value}
    with consumer_span(f"{SERVICE} {event.type}", carrier), log_context(**log_ids(event)):
        traceparent = current_trace_context().get("traceparent")
        deps = Dependencies(jobs=jobs, now=now, traceparent=traceparent, links=links)
        return await _STEP_HANDLERS[event.type](event, deps)


def _record(event: Event, applied: Applied) -> None:
    """Count and log what applying an event did, once its transaction committed."""
    metrics.EVENTS_APPLIED.labels(event.type, applied.outcome).inc()
    if applied.finished is not None:
        metrics.JOBS_FINISHED.labels(applied.finished).inc()
        if applied.job_duration is not None:
            metrics.JOB_DURATION_SECONDS.labels(applied.finished).observe(applied.job_duration.total_seconds())
        log.info(
            "job finished",
            extra={"job_id": str(event.job_id), "state": applied.finished, "job_duration_s": _seconds(applied)},
        )
    if applied.batch_finished is not None:
        log.info("batch finished", extra={"job_id": str(event.job_id), "state": applied.batch_finished})


def _seconds(applied: Applied) -> float | None:
    return None if applied.job_duration is None else round(applied.job_duration.total_seconds(), 3)


def _in_transaction(
    handler: Callable[[E, Dependencies], Awaitable[Applied]],
    transactions: Transactions,
    links: OutputLinks | None,
) -> Callable[[E], Awaitable[Sequence[Event]]]:
    async def handle(event: E) -> Sequence[Event]:
        traceparent = current_trace_context().get("traceparent")
        try:
            async with transactions() as jobs:
                deps = Dependencies(jobs=jobs, now=datetime.now(UTC), traceparent=traceparent, links=links)
                applied = await handler(event, deps)
        except (UnknownJob, UnknownStep) as error:
            raise PermanentError(str(error)) from error
        _record(event, applied)
        # Terminal events were committed to the outbox with the state, and the commit handed them to the relay;
        # publishing them here could lose them.
        return ()

    return handle
