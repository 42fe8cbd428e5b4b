"""The broker adapter: the aggregator's queue, its bindings, and which handler applies each event."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TypeVar

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
from pixtools_platform.broker import Consumer, PermanentError, Publisher, RetryPolicy, Topology
from pixtools_platform.routing import Routes, event_routing_keys, route
from pixtools_platform.telemetry import current_trace_context

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
) -> Consumer:
    """The consumer of `<namespace>.aggregator`; each job event is applied in one transaction, then acked."""
    routes = job_event_routes(transactions, links)
    return Consumer(
        connection=connection,
        publisher=publisher,
        topology=topology,
        service=SERVICE,
        routing_keys=event_routing_keys(routes),
        handlers=routes,
        retry=retry,
        prefetch=prefetch,
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
        metrics.EVENTS_APPLIED.labels(event.type, applied.outcome).inc()
        if applied.finished is not None:
            metrics.JOBS_FINISHED.labels(applied.finished).inc()
            if applied.job_duration is not None:
                metrics.JOB_DURATION_SECONDS.labels(applied.finished).observe(applied.job_duration.total_seconds())
            log.info("job finished", extra={"state": applied.finished, "job_duration_s": _seconds(applied)})
        if applied.batch_finished is not None:
            log.info("batch finished", extra={"job_id": str(event.job_id), "state": applied.batch_finished})
        # Terminal events were committed to the outbox with the state, and the commit handed them to the relay;
        # publishing them here could lose them.
        return ()

    return handle
