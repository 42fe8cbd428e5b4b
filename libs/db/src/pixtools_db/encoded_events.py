"""Events as the outbox stores and publishes them: serialized once, for the row and the publish alike."""

from dataclasses import dataclass
from typing import Any, Protocol


class OutboxEvent(Protocol):
    """What the outbox needs of an event (satisfied by every pixtools_contracts.Event)."""

    @property
    def type(self) -> str: ...

    @property
    def traceparent(self) -> str | None: ...

    @property
    def tracestate(self) -> str | None: ...

    @property
    def event_id(self) -> object: ...

    @property
    def correlation_id(self) -> str: ...

    @property
    def producer(self) -> str: ...

    def routing_key(self) -> str: ...

    def model_dump_json(self) -> str: ...


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event serialized once: its outbox row and its immediate publish share the same body bytes."""

    event_id: object
    event_type: str
    routing_key: str
    body: bytes
    headers: dict[str, str]
    correlation_id: str
    producer: str

    @classmethod
    def of(cls, event: OutboxEvent) -> "EncodedEvent":
        """Serialize an event's body and read the properties its publish and its row need."""
        return cls(
            event_id=event.event_id,
            event_type=event.type,
            routing_key=event.routing_key(),
            body=event.model_dump_json().encode(),
            headers=trace_headers(event),
            correlation_id=event.correlation_id,
            producer=event.producer,
        )

    def row(self) -> dict[str, Any]:
        """The event's outbox row, as every writer of the table stores it."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "routing_key": self.routing_key,
            "body": self.body,
            "headers": self.headers,
        }


def trace_headers(event: OutboxEvent) -> dict[str, str]:
    """The W3C trace context of an event as message headers, leaving out empty fields."""
    pairs = (("traceparent", event.traceparent), ("tracestate", event.tracestate))
    return {key: value for key, value in pairs if value}
