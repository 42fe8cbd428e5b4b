"""Reading a dead letter's story from its headers and body, and preparing it for another life.

Two writers leave dead letters: the platform consumer, which gives up with `x-death-reason`, `x-death-at`,
`x-attempt` and `x-original-routing-key`; and RabbitMQ itself (delivery limit, rejection), which adds its
standard `x-death` list, newest entry first. Both are read here.
"""

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, DeliveryMode, FieldValue

from pixtools_contracts import Event, StepRequested, parse_event
from pixtools_gateway.admin_models import ConsumerQueue, DeadLetterView

PREVIOUS_DEATHS = "x-previous-deaths"
"""Deaths before the last replay; the consumer keeps it because it does not start with 'x-death'."""

FIRST_DEAD_AT = "x-first-dead-at"
"""When the message first died, kept across replays."""

_DEATH_PREFIXES = ("x-death", "x-first-death", "x-last-death")
_DROPPED_ON_REPLAY = frozenset({"x-delivery-count", "x-original-routing-key", PREVIOUS_DEATHS, FIRST_DEAD_AT})


def parse_body(body: bytes) -> Event | None:
    """The event in a message body, or None when it does not decode."""
    try:
        return parse_event(body)
    except ValueError:
        return None


def describe(message: AbstractIncomingMessage, service: ConsumerQueue, queue: str) -> DeadLetterView:
    """What an operator needs to know about one dead letter."""
    headers = message.headers or {}
    deaths = _broker_deaths(headers)
    consumer_reason = _text(headers.get("x-death-reason"))
    reason = consumer_reason if consumer_reason is not None else _text(deaths[0].get("reason")) if deaths else None
    event_type, job_id, step_id = _identify(message)
    return DeadLetterView(
        message_id=message.message_id,
        service=service,
        queue=queue,
        dead_lettered_by="consumer" if consumer_reason is not None else "broker",
        reason=reason,
        event_type=event_type,
        job_id=job_id,
        step_id=step_id,
        death_count=_death_count(headers, deaths),
        attempts=_int(headers.get("x-attempt")),
        first_death_at=_first_death_at(headers, deaths),
        original_routing_key=_original_routing_key(headers, deaths),
    )


def replayable(message: AbstractIncomingMessage, dead: DeadLetterView) -> aio_pika.Message:
    """The message as it was first published, with a fresh attempt count and its death history kept aside."""
    headers: dict[str, FieldValue] = {
        key: value
        for key, value in (message.headers or {}).items()
        if not key.startswith(_DEATH_PREFIXES) and key not in _DROPPED_ON_REPLAY
    }
    # A stale x-delivery-count would make the consumer think the broker had redelivered it many times.
    headers["x-attempt"] = 1
    headers[PREVIOUS_DEATHS] = dead.death_count
    if dead.first_death_at is not None:
        headers[FIRST_DEAD_AT] = dead.first_death_at.isoformat()
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        app_id=message.app_id,
    )


def _identify(message: AbstractIncomingMessage) -> tuple[str | None, uuid.UUID | None, str | None]:
    event = parse_body(message.body)
    if event is not None:
        return event.type, event.job_id, event.step.id if isinstance(event, StepRequested) else None
    # Not a valid event (that may be why it died): still show what the body and properties name.
    try:
        loose = json.loads(message.body)
    except ValueError:
        loose = None
    fields: Mapping[str, Any] = loose if isinstance(loose, dict) else {}
    event_type = fields.get("type") if isinstance(fields.get("type"), str) else message.type
    return event_type, _uuid(fields.get("job_id")), None


def _broker_deaths(headers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The broker's x-death entries, newest first, without delay-queue expiries (those are retries, not deaths)."""
    entries = headers.get("x-death")
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, Mapping) and _text(entry.get("reason")) != "expired"]


def _death_count(headers: Mapping[str, Any], deaths: list[Mapping[str, Any]]) -> int:
    this_life = sum(_int(entry.get("count")) or 0 for entry in deaths)
    return (_int(headers.get(PREVIOUS_DEATHS)) or 0) + max(this_life, 1)


def _first_death_at(headers: Mapping[str, Any], deaths: list[Mapping[str, Any]]) -> datetime | None:
    for value in (headers.get(FIRST_DEAD_AT), headers.get("x-death-at")):
        if (found := _time(value)) is not None:
            return found
    times = [found for entry in deaths if (found := _time(entry.get("time"))) is not None]
    return min(times, default=None)


def _original_routing_key(headers: Mapping[str, Any], deaths: list[Mapping[str, Any]]) -> str | None:
    key = _text(headers.get("x-original-routing-key"))
    if key:
        return key
    routing_keys = deaths[0].get("routing-keys") if deaths else None
    return _text(routing_keys[0]) if isinstance(routing_keys, list) and routing_keys else None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _time(value: object) -> datetime | None:
    if isinstance(value, bytes | str):
        try:
            value = datetime.fromisoformat(_text(value) or "")
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None
