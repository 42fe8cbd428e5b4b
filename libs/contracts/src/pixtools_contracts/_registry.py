"""The registry of event types, and decoding a message body into its event by its type tag."""

from pydantic import JsonValue, TypeAdapter

from pixtools_contracts._events import (
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    ObjectsDetected,
    SourceFailed,
    SourceFetched,
    SourceRequested,
    StepCompleted,
    StepFailed,
    StepRequested,
    StepStarted,
)

EVENT_TYPES: dict[str, type[Event]] = {
    model.model_fields["type"].default: model
    for model in (
        JobSubmitted,
        StepRequested,
        StepStarted,
        StepCompleted,
        StepFailed,
        JobCompleted,
        JobFailed,
        JobCancelled,
        ObjectsDetected,
        SourceRequested,
        SourceFetched,
        SourceFailed,
    )
}


_JSON_OBJECT = TypeAdapter(dict[str, JsonValue])


def parse_event(body: bytes | str) -> Event:
    """Decode a message body into its event type, by its 'type' tag."""
    header = _JSON_OBJECT.validate_json(body)
    event_type = header.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    return EVENT_TYPES[event_type].model_validate(header)


class UnknownEventType(ValueError):
    """The message names an event type this reader does not know."""
