"""What the consumer reads from and writes onto a delivered message: ids for logs, delivery counts, copies."""

from collections.abc import Mapping

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from pixtools_contracts import Event, StepRequested
from pixtools_platform.telemetry import current_trace_id


def log_ids(event: Event) -> dict[str, str]:
    """What every log line about this message carries: its job, correlation, type, step and trace."""
    ids = {"job_id": str(event.job_id), "correlation_id": event.correlation_id, "event_type": event.type}
    step_id = event.step.id if isinstance(event, StepRequested) else getattr(event, "step_id", None)
    if isinstance(step_id, str):
        ids["step_id"] = step_id
    trace_id = current_trace_id()
    if trace_id is not None:
        ids["trace_id"] = trace_id
    return ids


def redeliveries(message: AbstractIncomingMessage) -> int:
    """How often the quorum queue delivered this message before (its x-delivery-count header)."""
    value = (message.headers or {}).get("x-delivery-count", 0)
    return value if isinstance(value, int) else 0


def attempt_of(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get("x-attempt", 1)
    return value if isinstance(value, int) and value >= 1 else 1


def copy_message(message: AbstractIncomingMessage, extra_headers: Mapping[str, str | int]) -> aio_pika.Message:
    headers = {key: value for key, value in (message.headers or {}).items() if not key.startswith("x-death")}
    headers.update(extra_headers)
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        app_id=message.app_id,
    )
