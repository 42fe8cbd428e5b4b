"""Operational figures: queue depths from RabbitMQ, and stage, job and outbox figures from Postgres."""

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pixtools_contracts import OPERATIONS, JobState, StepState
from pixtools_db import Job, Outbox, Step
from pixtools_gateway.adapters.admin_broker import QueueDepth
from pixtools_gateway.adapters.rabbit_management import QueueFigures
from pixtools_gateway.admin_models import (
    CONSUMER_QUEUES,
    ConsumerQueue,
    OutboxStatsView,
    QueueRole,
    QueueStatsView,
    StageStatsView,
)
from pixtools_platform.broker import Topology

ReadFigures = Callable[[Sequence[str]], Awaitable[dict[str, QueueFigures]]]
ReadDepths = Callable[[Sequence[str]], Awaitable[dict[str, QueueDepth]]]


def watched_queues(topology: Topology) -> list[tuple[str, ConsumerQueue, QueueRole]]:
    """(queue name, service or lane, role) of every work queue and dead-letter queue."""
    watched: list[tuple[str, ConsumerQueue, QueueRole]] = []
    for service in CONSUMER_QUEUES:
        watched.append((topology.queue(service), service, "work"))
        watched.append((topology.dead_letter_queue(service), service, "dead_letter"))
    return watched


async def queues_from_management(topology: Topology, read: ReadFigures) -> list[QueueStatsView]:
    """Queue figures from the management API; a queue it does not list does not exist yet."""
    watched = watched_queues(topology)
    figures = await read([name for name, _, _ in watched])
    missing = QueueFigures(ready=0, unacked=0, consumers=0)
    return [
        QueueStatsView(
            name=name,
            service=service,
            role=role,
            exists=name in figures,
            ready=figures.get(name, missing).ready,
            unacked=figures.get(name, missing).unacked,
            consumers=figures.get(name, missing).consumers,
        )
        for name, service, role in watched
    ]


async def queues_from_amqp(topology: Topology, read: ReadDepths) -> list[QueueStatsView]:
    """Queue figures from passive declares, which do not count unacked messages."""
    watched = watched_queues(topology)
    depths = await read([name for name, _, _ in watched])
    return [
        QueueStatsView(
            name=name,
            service=service,
            role=role,
            exists=depths[name].exists,
            ready=depths[name].ready,
            # Only a queue that does not exist certainly has none.
            unacked=None if depths[name].exists else 0,
            consumers=depths[name].consumers,
        )
        for name, service, role in watched
    ]


async def stage_stats(connection: AsyncConnection, *, minutes: int) -> list[StageStatsView]:
    """Per operation over the last `minutes`: finished steps and percentiles of succeeded steps' durations."""
    succeeded = Step.state == StepState.SUCCEEDED
    duration_ms = func.extract("epoch", Step.finished_at - Step.started_at) * 1000
    timed = succeeded & Step.started_at.is_not(None)
    query = (
        select(
            Step.op,
            func.count().filter(succeeded),
            func.count().filter(Step.state == StepState.FAILED),
            func.percentile_cont(0.5).within_group(duration_ms).filter(timed),
            func.percentile_cont(0.95).within_group(duration_ms).filter(timed),
        )
        # Matches the partial index on steps(finished_at), so only the window's rows are read.
        .where(Step.finished_at.is_not(None), Step.finished_at >= func.now() - timedelta(minutes=minutes))
        .group_by(Step.op)
    )
    rows = {row[0]: row[1:] for row in (await connection.execute(query)).all()}
    views = []
    for op, operation in OPERATIONS.items():
        completed, failed, p50, p95 = rows.get(op, (0, 0, None, None))
        views.append(
            StageStatsView(
                op=op,
                service=operation.service,
                completed=completed,
                failed=failed,
                throughput_per_minute=round((completed + failed) / minutes, 3),
                p50_ms=None if p50 is None else round(float(p50), 3),
                p95_ms=None if p95 is None else round(float(p95), 3),
            )
        )
    return views


async def job_counts(connection: AsyncConnection) -> dict[str, int]:
    """Jobs by state, every state present."""
    rows = (await connection.execute(select(Job.state, func.count()).group_by(Job.state))).all()
    counts: dict[str, int] = dict.fromkeys(JobState, 0)
    counts.update({state: count for state, count in rows})
    return counts


async def outbox_backlog(connection: AsyncConnection) -> OutboxStatsView:
    """Unpublished outbox rows and the oldest of them, read through the partial index on unpublished rows."""
    waiting = Outbox.published_at.is_(None)
    count = await connection.scalar(select(func.count()).select_from(Outbox).where(waiting))
    oldest = (
        await connection.execute(
            select(Outbox.routing_key, Outbox.last_error, func.extract("epoch", func.now() - Outbox.created_at))
            .where(waiting)
            .order_by(Outbox.id)
            .limit(1)
        )
    ).first()
    return OutboxStatsView(
        unpublished=count or 0,
        oldest_age_s=None if oldest is None else round(float(oldest[2]), 3),
        oldest_routing_key=None if oldest is None else oldest[0],
        oldest_error=None if oldest is None else oldest[1],
    )
