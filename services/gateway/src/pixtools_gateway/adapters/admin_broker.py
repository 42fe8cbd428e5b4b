"""Admin access to queues over a dedicated AMQP connection, so that reading a queue never loses a message.

Messages are taken with basic.get and manual acks on a channel of their own: whatever is not acked goes
back to its queue, in order, when that channel closes. Queues are declared passively only; a queue its
service has not declared yet reads as empty.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity

from pixtools_platform.broker import Publisher, Topology


@dataclass(frozen=True)
class QueueDepth:
    """A queue's ready messages and consumers as a passive declare reports them."""

    exists: bool
    ready: int
    consumers: int


class OpenedQueue:
    """A queue opened on its own channel: its depth at opening, and its messages one at a time."""

    def __init__(self, name: str, queue: AbstractQueue | None, depth: QueueDepth) -> None:
        self.name = name
        self.depth = depth
        self._queue = queue

    async def take(self) -> AbstractIncomingMessage | None:
        """The next message, unacked; None when the queue has no more for this channel."""
        if self._queue is None:
            return None
        return await self._queue.get(no_ack=False, fail=False)


class AdminBroker:
    """A plain (not self-healing) connection for admin work: a channel closed by the broker stays closed."""

    def __init__(self, connection: AbstractConnection, topology: Topology) -> None:
        self._connection = connection
        self.topology = topology

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, topology: Topology) -> AsyncIterator["AdminBroker"]:
        """Open the connection; closing it returns every message read and not settled."""
        connection = await aio_pika.connect(url, client_properties={"connection_name": "gateway-admin"})
        try:
            yield cls(connection, topology)
        finally:
            await connection.close()

    @contextlib.asynccontextmanager
    async def open_queue(self, name: str) -> AsyncIterator[OpenedQueue]:
        """Open a queue on a fresh channel; messages taken and not acked return when the block ends."""
        channel = await self._connection.channel()
        try:
            queue, depth = await _declare_passively(channel, name)
            yield OpenedQueue(name, queue, depth)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def depths(self, names: Sequence[str]) -> dict[str, QueueDepth]:
        """Ready messages and consumers of each queue (unacked ones are not reported over AMQP)."""

        async def depth(name: str) -> QueueDepth:
            async with self.open_queue(name) as opened:
                return opened.depth

        found = await asyncio.gather(*(depth(name) for name in names))
        return dict(zip(names, found, strict=True))

    @contextlib.asynccontextmanager
    async def publisher(self) -> AsyncIterator[Publisher]:
        """A publisher with confirms and mandatory routing on its own channel."""
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            yield Publisher(channel, await channel.get_exchange(self.topology.events, ensure=False))
        finally:
            if not channel.is_closed:
                await channel.close()


async def _declare_passively(channel: AbstractChannel, name: str) -> tuple[AbstractQueue | None, QueueDepth]:
    try:
        queue = await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        # Each service declares its queues when it first starts; until then there is nothing in them.
        return None, QueueDepth(exists=False, ready=0, consumers=0)
    result = queue.declaration_result
    return queue, QueueDepth(exists=True, ready=result.message_count or 0, consumers=result.consumer_count or 0)
