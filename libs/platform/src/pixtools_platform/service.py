"""One shape for every service: resources entered in order on an exit stack, closed in reverse on stop.

A service's `app.py` writes one `compose(resources)` function that opens each resource and enters it on
`resources` (an `AsyncExitStack`) in order. Whatever must stop first is entered last: consumers, so they
drain before anything they use is closed.
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aio_pika.abc import AbstractRobustConnection

from pixtools_platform.blobstore import BlobStore, open_blob_store
from pixtools_platform.broker import Publisher, Topology, connect
from pixtools_platform.ops import Check, OpsServer
from pixtools_platform.settings import CommonSettings

__all__ = ["Broker", "Compose", "Consuming", "Service", "blob_store", "broker", "ops_server"]

Compose = Callable[[AsyncExitStack], Awaitable[None]]
"""Opens a service's resources in order, entering each on the stack so that it closes in reverse."""


class Service:
    """A running service: `start` composes its resources, `stop` closes them in reverse order.

    Nothing connects before `start`. If composing fails part-way, what was already open is closed again.
    """

    def __init__(self, name: str, compose: Compose) -> None:
        self.name = name
        self._compose = compose
        self._resources: AsyncExitStack | None = None

    async def start(self) -> None:
        """Open every resource in order."""
        resources = AsyncExitStack()
        try:
            await self._compose(resources)
        except BaseException:
            await resources.aclose()
            raise
        self._resources = resources

    async def stop(self) -> None:
        """Close every resource in reverse order (consumers, entered last, drain first)."""
        resources, self._resources = self._resources, None
        if resources is not None:
            await resources.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()


class Consuming:
    """A readiness check: ready only while consumers run, from their start until their drain begins.

    The ops endpoints start before the consumers (so liveness answers during start-up and drain), and this
    keeps `/readyz` from calling a replica ready before it takes work, or while it drains.
    """

    def __init__(self) -> None:
        self._running = False

    def mark(self, *, running: bool) -> None:
        """Record that the consumers have started, or have begun to stop."""
        self._running = running

    async def check(self) -> None:
        """Raise while the consumers are not taking work."""
        if not self._running:
            raise RuntimeError("not consuming yet, or draining")


@dataclass(frozen=True)
class Broker:
    """An open broker connection and its confirming publisher."""

    connection: AbstractRobustConnection
    publisher: Publisher
    topology: Topology

    async def check(self) -> None:
        """Readiness check: the connection is open."""
        if self.connection.is_closed:
            raise ConnectionError("broker connection is closed")


@contextlib.asynccontextmanager
async def broker(settings: CommonSettings, name: str) -> AsyncIterator[Broker]:
    """Connect as `name` and open a publisher on the settings' namespace; close both in reverse."""
    connection = await connect(settings.amqp_url, name)
    try:
        topology = Topology(settings.namespace)
        publisher = await Publisher.open(connection, topology)
        try:
            yield Broker(connection, publisher, topology)
        finally:
            await publisher.close()
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def blob_store(settings: CommonSettings) -> AsyncIterator[BlobStore]:
    """The configured blob store, closed on exit."""
    blobs = await open_blob_store(settings)
    try:
        yield blobs
    finally:
        await blobs.close()


@contextlib.asynccontextmanager
async def ops_server(settings: CommonSettings, checks: Mapping[str, Check]) -> AsyncIterator[None]:
    """Serve /healthz, /readyz and /metrics while the block runs; nothing when `ops_port` is 0."""
    if not settings.ops_port:
        yield
        return
    server = OpsServer(settings.ops_host, settings.ops_port, checks)
    await server.start()
    try:
        yield
    finally:
        await server.stop()
