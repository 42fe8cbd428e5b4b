"""The composition root: every adapter of the aggregator is chosen and wired here."""

import functools
import logging
from datetime import timedelta

from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pixtools_aggregator.adapters.deliveries import SqlDeliveryStore
from pixtools_aggregator.adapters.http_sender import HttpxWebhookSender
from pixtools_aggregator.adapters.jobs import job_transaction
from pixtools_aggregator.adapters.retention import retention_lease, retention_transaction
from pixtools_aggregator.dispatcher import WebhookDispatcher
from pixtools_aggregator.handlers import Applied
from pixtools_aggregator.retention import RetentionCleaner, RetentionPolicy
from pixtools_aggregator.settings import AggregatorSettings
from pixtools_aggregator.subscribers import SERVICE, build_consumer
from pixtools_aggregator.webhooks import BreakerPolicy, RetrySchedule
from pixtools_db import create_engine, session_factory
from pixtools_db.outbox import OutboxRelay
from pixtools_platform.blobstore import BlobStore, open_blob_store
from pixtools_platform.broker import Consumer, Publisher, Topology, connect
from pixtools_platform.logs import configure_logging
from pixtools_platform.netguard import AddressPolicy
from pixtools_platform.ops import OpsServer
from pixtools_platform.runtime import run
from pixtools_platform.telemetry import configure_tracing

log = logging.getLogger(__name__)


class Aggregator:
    """The running service: step consumer, outbox relay, webhook dispatcher, retention cleanup and ops endpoints."""

    def __init__(self, settings: AggregatorSettings) -> None:
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        self._consumer: Consumer | None = None
        self._relay: OutboxRelay | None = None
        self._dispatcher: WebhookDispatcher | None = None
        self._sender: HttpxWebhookSender | None = None
        self._ops: OpsServer | None = None
        self._blobs: BlobStore | None = None
        self._cleaner: RetentionCleaner | None = None

    async def start(self) -> None:
        """Connect, then start the relay and dispatcher before consuming, so nothing committed waits."""
        settings = self.settings
        self._engine = create_engine(settings.database_url)
        sessions = session_factory(self._engine)
        self._connection = await connect(settings.amqp_url, f"pixtools-{SERVICE}")
        topology = Topology(settings.namespace)
        self._publisher = publisher = await Publisher.open(self._connection, topology)

        self._relay = OutboxRelay(sessions, publisher, poll_s=settings.outbox_poll_s)
        self._sender = HttpxWebhookSender(
            policy=AddressPolicy.parse(settings.webhook_allow_cidrs, ports=None), timeout_s=settings.webhook_timeout_s
        )
        self._dispatcher = WebhookDispatcher(
            store=SqlDeliveryStore(
                sessions,
                BreakerPolicy(
                    threshold=settings.webhook_breaker_threshold,
                    cooldown=timedelta(seconds=settings.webhook_breaker_cooldown_s),
                ),
            ),
            sender=self._sender,
            schedule=RetrySchedule(tuple(settings.webhook_retry_schedule), settings.webhook_jitter),
            lease=timedelta(seconds=settings.webhook_lease_s),
            batch=settings.webhook_batch,
            poll_s=settings.webhook_poll_s,
        )
        self._blobs = await open_blob_store(settings)
        self._cleaner = RetentionCleaner(
            transactions=functools.partial(retention_transaction, sessions),
            blobs=self._blobs,
            lease=retention_lease(sessions),
            policy=RetentionPolicy(
                max_age=timedelta(days=settings.retention_days),
                outbox_max_age=timedelta(days=settings.retention_outbox_days),
                chunk=settings.retention_chunk,
            ),
            interval_s=settings.retention_interval_s,
        )
        self._consumer = build_consumer(
            connection=self._connection,
            publisher=publisher,
            topology=topology,
            retry=settings.retry,
            prefetch=settings.prefetch,
            transactions=functools.partial(job_transaction, sessions),
            on_applied=self._wake,
        )
        self._relay.start()
        self._dispatcher.start()
        self._cleaner.start()
        await self._consumer.start()
        if settings.ops_port:
            self._ops = OpsServer(
                settings.ops_host, settings.ops_port, {"database": self._check_database, "broker": self._check_broker}
            )
            await self._ops.start()

    async def stop(self) -> None:
        """Drain the consumer, then stop the relay and dispatcher and release every connection."""
        if self._cleaner is not None:
            await self._cleaner.stop()
        if self._consumer is not None:
            await self._consumer.stop(self.settings.drain_seconds)
        if self._relay is not None:
            await self._relay.stop()
        if self._dispatcher is not None:
            await self._dispatcher.stop(grace_s=self.settings.webhook_timeout_s)
        if self._sender is not None:
            await self._sender.close()
        if self._ops is not None:
            await self._ops.stop()
        if self._blobs is not None:
            await self._blobs.close()
        if self._publisher is not None:
            await self._publisher.close()
        if self._connection is not None:
            await self._connection.close()
        if self._engine is not None:
            await self._engine.dispose()

    def _wake(self, applied: Applied) -> None:
        if applied.staged and self._relay is not None:
            self._relay.dispatch_soon(applied.staged)
        if applied.webhook and self._dispatcher is not None:
            self._dispatcher.wake()

    async def _check_database(self) -> None:
        assert self._engine is not None
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def _check_broker(self) -> None:
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("broker connection is closed")


def create_app(settings: AggregatorSettings) -> Aggregator:
    """Build the aggregator; nothing connects until start()."""
    return Aggregator(settings)


def main() -> None:
    """Console entry point: read settings from the environment and run until SIGTERM."""
    settings = AggregatorSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    configure_tracing(SERVICE, settings.otel_endpoint)
    run(lambda: create_app(settings))
