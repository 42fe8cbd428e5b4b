"""Admin endpoints: dead letters and operational statistics (admin API keys only)."""

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Query

from pixtools_gateway.adapters.admin_broker import AdminBroker
from pixtools_gateway.adapters.rabbit_management import RabbitManagement, vhost_of
from pixtools_gateway.admin_models import (
    CONSUMER_QUEUES,
    ConsumerQueue,
    DeadLetterList,
    DeadLetterSelection,
    DiscardResult,
    OutboxStatsView,
    QueueStatsView,
    ReplayResult,
    StageStatsView,
    StatsView,
)
from pixtools_gateway.api.deps import ADMIN_ONLY, Resources, Shared
from pixtools_gateway.handlers.dead_letters import discard_dead_letters, list_dead_letters, replay_dead_letters
from pixtools_gateway.handlers.stats import (
    job_counts,
    outbox_backlog,
    queues_from_amqp,
    queues_from_management,
    stage_stats,
)
from pixtools_gateway.openapi import problems
from pixtools_gateway.settings import GatewaySettings
from pixtools_platform.broker import Topology

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[ADMIN_ONLY])


def _broker(settings: GatewaySettings) -> contextlib.AbstractAsyncContextManager[AdminBroker]:
    """A dedicated broker connection for one admin request, closed before the response goes out."""
    return AdminBroker.connect(settings.amqp_url, Topology(settings.namespace))


@router.get("/dead-letters", response_model=DeadLetterList, summary="List dead letters per service queue")
async def read_dead_letters(
    shared: Shared,
    service: Annotated[ConsumerQueue | None, Query(description="Only this service's or lane's queue.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Messages listed per queue.")] = 100,
) -> DeadLetterList:
    """Dead letters with their reason, job, death count and first death; reading leaves them in place."""
    async with _broker(shared.settings) as broker:
        return await list_dead_letters(broker, services=[service] if service else CONSUMER_QUEUES, limit=limit)


@router.post(
    "/dead-letters/replay", response_model=ReplayResult, summary="Replay dead letters", responses=problems(404, 409)
)
async def replay(selection: DeadLetterSelection, shared: Shared) -> ReplayResult:
    """Send one dead letter (by message id) or all of them back to their work queue, then remove them."""
    async with _broker(shared.settings) as broker:
        return await replay_dead_letters(broker, shared.sessions, selection)


@router.delete("/dead-letters", response_model=DiscardResult, summary="Discard dead letters", responses=problems(404))
async def discard(selection: Annotated[DeadLetterSelection, Query()], shared: Shared) -> DiscardResult:
    """Remove one dead letter (by message id) or all of them for good."""
    async with _broker(shared.settings) as broker:
        return await discard_dead_letters(broker, selection)


@router.get("/stats", response_model=StatsView, summary="Queue, stage, job and outbox statistics")
async def read_stats(
    shared: Shared,
    minutes: Annotated[int, Query(ge=1, le=1440, description="Window of the stage figures.")] = 15,
) -> StatsView:
    """Queue depths from RabbitMQ; stage throughput and percentiles, job counts and outbox backlog from Postgres."""
    (queues, source, source_error), (stages, jobs, outbox) = await asyncio.gather(
        _queue_stats(shared.settings), _database_stats(shared, minutes)
    )
    return StatsView(
        generated_at=datetime.now(UTC),
        window_minutes=minutes,
        queue_source=source,
        queue_source_error=source_error,
        queues=queues,
        stages=stages,
        jobs=jobs,
        outbox=outbox,
    )


async def _queue_stats(
    settings: GatewaySettings,
) -> tuple[list[QueueStatsView], Literal["management", "amqp"], str | None]:
    topology = Topology(settings.namespace)
    failure = None
    if settings.rabbitmq_management_url:
        management = RabbitManagement(settings.rabbitmq_management_url, vhost_of(settings.amqp_url))
        try:
            return await queues_from_management(topology, management.queue_figures), "management", None
        except (httpx.HTTPError, ValueError) as error:
            # Statistics should still answer while the management plugin is down: fall back to AMQP.
            failure = f"{type(error).__name__}: {error}"
    async with _broker(settings) as broker:
        return await queues_from_amqp(topology, broker.depths), "amqp", failure


async def _database_stats(
    shared: Resources, minutes: int
) -> tuple[list[StageStatsView], dict[str, int], OutboxStatsView]:
    async with shared.reader.connect() as connection:
        return (
            await stage_stats(connection, minutes=minutes),
            await job_counts(connection),
            await outbox_backlog(connection),
        )
