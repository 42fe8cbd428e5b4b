"""The properties a publish puts on the wire are the bytes aio-pika's `Message` produced for the same values."""

import uuid

import aio_pika
import pytest

from pixtools_contracts import StepStarted
from pixtools_platform.broker import encode_event
from pixtools_platform.broker.publisher import json_message

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _as_aio_pika_built_them(
    headers: dict[str, str], correlation_id: str | None, app_id: str | None
) -> aio_pika.Message:
    """The message the publisher built before it made the frame's properties itself."""
    return aio_pika.Message(
        b"{}",
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id="id-1",
        correlation_id=correlation_id,
        type="step.started.v1",
        app_id=app_id,
        headers=headers,
    )


@pytest.mark.parametrize(
    ("headers", "correlation_id", "app_id"),
    [
        ({"traceparent": TRACEPARENT, "tracestate": "vendor=1"}, "req-1", "ingest"),
        ({"traceparent": TRACEPARENT}, "req-1", "ingest"),
        ({}, "req-1", "gateway"),
        ({}, None, None),
    ],
)
def test_json_message_properties_marshal_to_the_bytes_aio_pika_sent(
    headers: dict[str, str], correlation_id: str | None, app_id: str | None
) -> None:
    ours = json_message(
        b"{}",
        message_id="id-1",
        message_type="step.started.v1",
        headers=dict(headers),
        correlation_id=correlation_id,
        app_id=app_id,
    )
    before = _as_aio_pika_built_them(dict(headers), correlation_id, app_id).properties
    assert ours.properties.marshal() == before.marshal()
    assert ours.properties == before


def test_an_encoded_event_carries_its_identity_type_producer_and_trace() -> None:
    event = StepStarted(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="req-7",
        producer="ingest",
        traceparent=TRACEPARENT,
        step_id="0",
        op="resize",
    )
    routing_key, message = encode_event(event)
    assert routing_key == "step.started.v1"
    assert message.body == event.model_dump_json().encode()
    expected = aio_pika.Message(
        message.body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event.event_id),
        correlation_id="req-7",
        type="step.started.v1",
        app_id="ingest",
        headers={"traceparent": TRACEPARENT},
    )
    assert message.properties.marshal() == expected.properties.marshal()
