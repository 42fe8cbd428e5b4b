"""Confirmed, mandatory publishing: an unroutable or unconfirmed message is an error."""

import asyncio
from collections.abc import Iterable, Mapping

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection, DeliveryMode, FieldValue
from aio_pika.exceptions import DeliveryError

from pixtools_contracts import Event
from pixtools_platform.broker.errors import Unroutable
from pixtools_platform.broker.topology import Topology
from pixtools_platform.telemetry import current_trace_context


def encode_event(event: Event) -> tuple[str, aio_pika.Message]:
    """Turn an event into (routing key, persistent message), stamping the current trace context if absent."""
    if event.traceparent is None:
        context = current_trace_context()
        if context.get("traceparent"):
            event = event.model_copy(
                update={"traceparent": context["traceparent"], "tracestate": context.get("tracestate")}
            )
    headers: dict[str, FieldValue] = {}
    if event.traceparent:
        headers["traceparent"] = event.traceparent
    if event.tracestate:
        headers["tracestate"] = event.tracestate
    message = aio_pika.Message(
        event.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=str(event.event_id),
        correlation_id=event.correlation_id,
        type=event.type,
        app_id=event.producer,
        headers=headers,
    )
    return event.routing_key(), message


class Publisher:
    """Publishes to the events exchange on a channel with publisher confirms."""

    def __init__(self, channel: AbstractChannel, events: AbstractExchange) -> None:
        self._channel = channel
        self._events = events

    @classmethod
    async def open(cls, connection: AbstractRobustConnection, topology: Topology) -> "Publisher":
        """Open a confirming channel and declare the exchanges."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        events = await topology.declare_exchanges(channel)
        return cls(channel, events)

    async def publish(self, event: Event) -> None:
        """Publish one event and wait for the broker's confirm."""
        routing_key, message = encode_event(event)
        await self.publish_message(routing_key, message)

    async def publish_all(self, events: Iterable[Event]) -> None:
        """Publish commands first, then notifications, each group concurrently; returns when all are confirmed.

        A step's outcome must never be confirmed while the requests for the steps after it failed: the retry
        would then report the step done twice and never start its successors.
        """
        pending = list(events)
        await asyncio.gather(*(self.publish(event) for event in pending if not event.fanout))
        await asyncio.gather(*(self.publish(event) for event in pending if event.fanout))

    async def publish_message(self, routing_key: str, message: aio_pika.Message, exchange: str | None = None) -> None:
        """Publish a prepared message to the events exchange, or to a named exchange ('' is the default one)."""
        target = self._events if exchange is None else await self._exchange(exchange)
        try:
            await target.publish(message, routing_key=routing_key, mandatory=True)
        except DeliveryError as error:
            raise Unroutable(
                f"no queue is bound to {routing_key!r} on {target.name or 'the default exchange'}"
            ) from error

    async def publish_json(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        message_type: str,
        headers: Mapping[str, str],
        correlation_id: str | None = None,
        app_id: str | None = None,
    ) -> None:
        """Publish an already-encoded event body (the outbox relay's path) with the properties `publish` sets."""
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=message_id,
            correlation_id=correlation_id,
            type=message_type,
            app_id=app_id,
            headers=dict(headers),
        )
        await self.publish_message(routing_key, message)

    async def _exchange(self, name: str) -> AbstractExchange:
        if name == "":
            return self._channel.default_exchange
        return await self._channel.get_exchange(name, ensure=False)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()
