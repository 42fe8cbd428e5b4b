"""The ingest worker's factory and composition root."""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aio_pika.abc import AbstractRobustConnection

from pixtools_ingest import subscribers
from pixtools_ingest.handlers import Dependencies
from pixtools_ingest.settings import IngestSettings
from pixtools_platform.blobstore import BlobStore, open_blob_store
from pixtools_platform.broker import Consumer, Publisher, Topology, connect
from pixtools_platform.logs import configure_logging
from pixtools_platform.ops import OpsServer
from pixtools_platform.runtime import run
from pixtools_platform.telemetry import configure_tracing

T = TypeVar("T")


class IngestApp:
    """Consumes step requests for the CPU operations until stopped."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(settings.cpu_workers, thread_name_prefix="ingest-cpu")
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        self._blobs: BlobStore | None = None
        self._consumer: Consumer | None = None
        self._ops: OpsServer | None = None

    async def _run_cpu(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def start(self) -> None:
        """Connect, declare the queue and start consuming."""
        settings = self.settings
        topology = Topology(settings.namespace)
        self._connection = await connect(settings.amqp_url, "ingest")
        self._publisher = publisher = await Publisher.open(self._connection, topology)
        self._blobs = await open_blob_store(settings)
        deps = Dependencies(
            blobs=self._blobs, run_cpu=self._run_cpu, announce=publisher.publish, max_pixels=settings.max_pixels
        )
        self._consumer = Consumer(
            connection=self._connection,
            publisher=publisher,
            topology=topology,
            service="ingest",
            routing_keys=subscribers.ROUTING_KEYS,
            handlers=subscribers.handlers(deps),
            retry=settings.retry,
            prefetch=settings.prefetch,
            on_exhausted=subscribers.on_exhausted,
        )
        await self._consumer.start()
        if settings.ops_port:
            connection = self._connection
            self._ops = OpsServer(
                settings.ops_host,
                settings.ops_port,
                {"broker": functools.partial(_broker_open, connection), "storage": self._blobs.check},
            )
            await self._ops.start()

    async def stop(self) -> None:
        """Drain in-flight steps, then release everything."""
        if self._consumer is not None:
            await self._consumer.stop(self.settings.drain_seconds)
        if self._ops is not None:
            await self._ops.stop()
        if self._publisher is not None:
            await self._publisher.close()
        if self._connection is not None:
            await self._connection.close()
        if self._blobs is not None:
            await self._blobs.close()
        self._executor.shutdown(wait=True, cancel_futures=True)


async def _broker_open(connection: AbstractRobustConnection) -> None:
    if connection.is_closed:
        raise ConnectionError("broker connection is closed")


def create_app(settings: IngestSettings) -> IngestApp:
    """Build the ingest worker from settings."""
    return IngestApp(settings)


def main() -> None:
    """Console entry point: `pixtools-ingest`."""
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level, settings.log_json)
    configure_tracing("ingest", settings.otel_endpoint)
    run(lambda: create_app(settings))
