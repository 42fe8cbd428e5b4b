"""An event staged in the outbox, serialised once for both its outbox row and the relay's publish."""

from dataclasses import dataclass, field

from pixtools_contracts import Event


@dataclass(frozen=True)
class EncodedEvent:
    """An event with its JSON body computed once (pixtools_db's outbox reads the same fields of it as of an Event).

    The outbox row and the relay's immediate publish each asked the event for its JSON; a terminal event with its
    outputs costs tens of microseconds to serialise, once is enough.
    """

    event: Event
    body: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", self.event.model_dump_json())

    @property
    def type(self) -> str:
        """The event's type tag."""
        return self.event.type

    @property
    def event_id(self) -> object:
        """The event's id."""
        return self.event.event_id

    @property
    def traceparent(self) -> str | None:
        """The event's W3C traceparent."""
        return self.event.traceparent

    @property
    def tracestate(self) -> str | None:
        """The event's W3C tracestate."""
        return self.event.tracestate

    @property
    def correlation_id(self) -> str:
        """The event's correlation id."""
        return self.event.correlation_id

    @property
    def producer(self) -> str:
        """The service that produced the event."""
        return self.event.producer

    def routing_key(self) -> str:
        """The routing key the event's type derives."""
        return self.event.routing_key()

    def model_dump_json(self) -> str:
        """The event's JSON, serialised when it was staged."""
        return self.body
