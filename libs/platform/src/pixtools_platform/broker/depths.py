"""Queue depths by passive declare, on a plain connection of their own that is reopened when it drops."""

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractConnection
from aiormq.exceptions import ChannelNotFoundEntity


@dataclass(frozen=True)
class QueueDepth:
    """A queue's ready messages and consumers (AMQP does not report unacked messages)."""

    ready: int
    consumers: int


class QueueDepthReader:
    """Reads queue depths; a queue that does not exist yet is left out of the answer."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name
        self._connection: AbstractConnection | None = None

    async def read(self, names: Sequence[str]) -> dict[str, QueueDepth]:
        """Ready messages and consumers of each existing queue of `names`, each read on a channel of its own."""
        connection = await self._connected()
        depths: dict[str, QueueDepth] = {}
        for name in names:
            # A passive declare of a missing queue closes its channel, so each queue gets a fresh one.
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except ChannelNotFoundEntity:
                continue
            finally:
                if not channel.is_closed:
                    await channel.close()
            result = queue.declaration_result
            depths[name] = QueueDepth(ready=result.message_count or 0, consumers=result.consumer_count or 0)
        return depths

    async def close(self) -> None:
        """Close the connection, if open."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _connected(self) -> AbstractConnection:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(self._url, client_properties={"connection_name": self._name})
        return self._connection
