"""The shape every stage worker shares: broker, storage, one consumer, ops endpoints, draining stop."""

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection

from pixtools_platform.blobstore import BlobStore, open_blob_store
from pixtools_platform.broker import Consumer, Handler, Publisher, Topology, connect
from pixtools_platform.broker.consumer import ExhaustedHook
from pixtools_platform.ops import Check, OpsServer
from pixtools_platform.settings import CommonSettings


@dataclass(frozen=True)
class Wiring:
    """What a stage hands the worker once connected: its handlers, its give-up hook, extra readiness checks."""

    handlers: Mapping[str, Handler]
    on_exhausted: ExhaustedHook | None = None
    checks: Mapping[str, Check] | None = None


Wire = Callable[[BlobStore, Publisher], Awaitable[Wiring]]
"""Builds a stage's handlers from the opened storage and publisher (and loads its models)."""


class StageWorker:
    """Consumes one service queue until stopped; the stage supplies only its handlers."""

    def __init__(
        self,
        settings: CommonSettings,
        *,
        service: str,
        routing_keys: Sequence[str],
        wire: Wire,
        release: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self._service = service
        self._routing_keys = routing_keys
        self._wire = wire
        self._release = release
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        self._blobs: BlobStore | None = None
        self._consumer: Consumer | None = None
        self._ops: OpsServer | None = None

    async def start(self) -> None:
        """Connect, wire the stage, declare its queue and start consuming."""
        settings = self.settings
        topology = Topology(settings.namespace)
        self._connection = await connect(settings.amqp_url, self._service)
        self._publisher = await Publisher.open(self._connection, topology)
        self._blobs = await open_blob_store(settings)
        wiring = await self._wire(self._blobs, self._publisher)
        self._consumer = Consumer(
            connection=self._connection,
            publisher=self._publisher,
            topology=topology,
            service=self._service,
            routing_keys=self._routing_keys,
            handlers=wiring.handlers,
            retry=settings.retry,
            prefetch=settings.prefetch,
            on_exhausted=wiring.on_exhausted,
        )
        await self._consumer.start()
        if settings.ops_port:
            checks: dict[str, Check] = {
                "broker": functools.partial(_connection_open, self._connection),
                "storage": self._blobs.check,
                **(wiring.checks or {}),
            }
            self._ops = OpsServer(settings.ops_host, settings.ops_port, checks)
            await self._ops.start()

    async def stop(self) -> None:
        """Drain in-flight messages, then release everything in reverse order."""
        if self._consumer is not None:
            await self._consumer.stop(self.settings.drain_seconds)
        if self._ops is not None:
            await self._ops.stop()
        if self._release is not None:
            await self._release()
        if self._publisher is not None:
            await self._publisher.close()
        if self._connection is not None:
            await self._connection.close()
        if self._blobs is not None:
            await self._blobs.close()


async def _connection_open(connection: AbstractRobustConnection) -> None:
    if connection.is_closed:
        raise ConnectionError("broker connection is closed")
