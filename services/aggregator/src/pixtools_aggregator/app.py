"""The composition root: every adapter of the aggregator is chosen and wired here."""

import functools
from contextlib import AsyncExitStack
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixtools_aggregator.adapters.backlog import read_database_backlog
from pixtools_aggregator.adapters.deliveries import SqlDeliveryStore
from pixtools_aggregator.adapters.http_sender import HttpxWebhookSender
from pixtools_aggregator.adapters.jobs import WEBHOOKS_TOPIC, group_transaction, job_transaction
from pixtools_aggregator.adapters.links import BlobStoreLinks
from pixtools_aggregator.adapters.retention import retention_lease, retention_transaction
from pixtools_aggregator.backlog import BacklogSampler, watched_queues
from pixtools_aggregator.dispatcher import WebhookDispatcher
from pixtools_aggregator.retention import RetentionCleaner, RetentionPolicy
from pixtools_aggregator.routing import SERVICE, build_consumer
from pixtools_aggregator.settings import AggregatorSettings
from pixtools_aggregator.webhooks import BreakerPolicy, RetrySchedule
from pixtools_db import create_engine, session_factory
from pixtools_db.commits import on_commit
from pixtools_db.outbox import OutboxRelay
from pixtools_db.pool_metrics import export_pool_metrics
from pixtools_platform.blobstore import BlobStore
from pixtools_platform.broker.depths import QueueDepthReader
from pixtools_platform.logs import configure_logging
from pixtools_platform.netguard import AddressPolicy
from pixtools_platform.ops import Check
from pixtools_platform.runtime import run
from pixtools_platform.service import Consuming, Service, blob_store, broker, ops_server
from pixtools_platform.telemetry import configure_tracing


def create_app(settings: AggregatorSettings) -> Service:
    """Build the aggregator: step consumer, outbox relay, webhook dispatcher, retention cleanup, backlog gauges, ops.

    Entered in this order, they stop in reverse: the backlog sampler and the cleaner first, then the consumer drains,
    then the relay and the dispatcher (with grace) finish what was committed, and the connections close last.
    """

    async def compose(resources: AsyncExitStack) -> None:
        engine = create_engine(settings.database_url)
        resources.push_async_callback(engine.dispose)
        export_pool_metrics(engine, SERVICE)
        sessions = session_factory(engine)
        messages = await resources.enter_async_context(broker(settings, f"pixtools-{SERVICE}"))
        blobs = await resources.enter_async_context(blob_store(settings))
        consuming = Consuming()
        checks: dict[str, Check] = {
            "database": functools.partial(_check_database, engine),
            "broker": messages.check,
            "consumer": consuming.check,
        }
        await resources.enter_async_context(ops_server(settings, checks))
        sender = HttpxWebhookSender(
            policy=AddressPolicy.parse(settings.webhook_allow_cidrs, ports=None), timeout_s=settings.webhook_timeout_s
        )
        resources.push_async_callback(sender.close)
        dispatcher = webhook_dispatcher(settings, sessions, sender)
        dispatcher.start()
        resources.push_async_callback(dispatcher.stop, grace_s=settings.webhook_timeout_s)
        relay = OutboxRelay(sessions, messages.publisher, poll_s=settings.outbox_poll_s)
        relay.start()
        resources.push_async_callback(relay.stop)

        # Committed deliveries wake the dispatcher; committed events go to the relay, which watches its sessions.
        on_commit(sessions, WEBHOOKS_TOPIC, lambda _deliveries: dispatcher.wake())
        # The relay and dispatcher run before consuming starts, so nothing committed waits.
        consumer = build_consumer(
            connection=messages.connection,
            publisher=messages.publisher,
            topology=messages.topology,
            retry=settings.retry,
            prefetch=settings.prefetch,
            transactions=functools.partial(job_transaction, sessions),
            # Groups run straight on a pooled asyncpg connection: the session's own work cost more than their SQL.
            group_transactions=functools.partial(group_transaction, engine, sessions),
            links=BlobStoreLinks(blobs, expires_s=settings.presign_expiry_s),
            group_size=settings.group_size,
            group_wait_s=settings.group_wait_s,
            group_concurrency=settings.group_concurrency,
        )
        await consumer.start()
        resources.push_async_callback(consumer.stop, settings.drain_seconds)
        consuming.mark(running=True)
        resources.callback(consuming.mark, running=False)
        cleaner = retention_cleaner(settings, sessions, blobs)
        cleaner.start()
        resources.push_async_callback(cleaner.stop)
        depths = QueueDepthReader(settings.amqp_url, f"pixtools-{SERVICE}-backlog")
        resources.push_async_callback(depths.close)
        sampler = BacklogSampler(
            read_database=functools.partial(read_database_backlog, sessions),
            read_queues=depths.read,
            queues=watched_queues(messages.topology, SERVICE),
            interval_s=settings.backlog_sample_s,
        )
        sampler.start()
        resources.push_async_callback(sampler.stop)

    return Service(SERVICE, compose)


def webhook_dispatcher(
    settings: AggregatorSettings, sessions: async_sessionmaker[AsyncSession], sender: HttpxWebhookSender
) -> WebhookDispatcher:
    """Delivers due webhooks with retries and a per-endpoint circuit breaker."""
    return WebhookDispatcher(
        store=SqlDeliveryStore(
            sessions,
            BreakerPolicy(
                threshold=settings.webhook_breaker_threshold,
                cooldown=timedelta(seconds=settings.webhook_breaker_cooldown_s),
            ),
        ),
        sender=sender,
        schedule=RetrySchedule(tuple(settings.webhook_retry_schedule), settings.webhook_jitter),
        lease=timedelta(seconds=settings.webhook_lease_s),
        batch=settings.webhook_batch,
        poll_s=settings.webhook_poll_s,
    )


def retention_cleaner(
    settings: AggregatorSettings, sessions: async_sessionmaker[AsyncSession], blobs: BlobStore
) -> RetentionCleaner:
    """Deletes expired jobs, their objects and old bookkeeping rows, one replica at a time."""
    return RetentionCleaner(
        transactions=functools.partial(retention_transaction, sessions),
        blobs=blobs,
        lease=retention_lease(sessions),
        policy=RetentionPolicy(
            max_age=timedelta(days=settings.retention_days),
            outbox_max_age=timedelta(days=settings.retention_outbox_days),
            chunk=settings.retention_chunk,
        ),
        interval_s=settings.retention_interval_s,
    )


async def _check_database(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def main() -> None:
    """Console entry point: read settings from the environment and run until SIGTERM."""
    settings = AggregatorSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    configure_tracing(SERVICE, settings.otel_endpoint)
    run(lambda: create_app(settings))
