"""Reading a dead letter's story from its headers and body, and preparing it for replay."""

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pixtools_contracts import ObjectRef, Pipeline, StepRequested, first_steps, plan
from pixtools_gateway.handlers.dead_letter_headers import FIRST_DEAD_AT, PREVIOUS_DEATHS, describe, replayable

JOB_ID = uuid.UUID(int=7)


@dataclass
class FakeMessage:
    """The parts of an incoming message the dead-letter code reads."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = "event-1"
    content_type: str | None = "application/json"
    correlation_id: str | None = "corr-1"
    type: str | None = None
    app_id: str | None = "ingest"


def _step_request() -> bytes:
    [(step, rest)] = first_steps(plan(Pipeline.model_validate([{"op": "resize", "params": {"width": 8}}])))
    event = StepRequested(
        job_id=JOB_ID, tenant_id=uuid.UUID(int=1), correlation_id="c", producer="test", service="ingest",
        input=ObjectRef(key="k", content_type="image/png", bytes=1, sha256="0" * 64), step=step, remaining=rest,
    )  # fmt: skip
    return event.model_dump_json().encode()


def test_a_consumer_dead_letter_is_described_from_its_own_headers() -> None:
    message = FakeMessage(
        _step_request(),
        headers={
            "x-death-reason": b"decode failed",
            "x-death-at": "2024-05-01T10:00:00+00:00",
            "x-attempt": 3,
            "x-original-routing-key": "step.requested.v1.ingest",
        },
    )
    view = describe(message, "ingest", "pixtools.ingest.dead")  # type: ignore[arg-type]
    assert view.dead_lettered_by == "consumer"
    assert view.reason == "decode failed"
    assert (view.event_type, view.job_id, view.step_id) == ("step.requested.v1", JOB_ID, "0")
    assert (view.death_count, view.attempts) == (1, 3)
    assert view.first_death_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert view.original_routing_key == "step.requested.v1.ingest"


def test_a_broker_dead_letter_counts_deaths_but_not_delay_queue_expiries() -> None:
    deaths = [
        {"reason": "delivery_limit", "count": 2, "time": datetime(2024, 5, 2), "routing-keys": ["step.x"]},
        {"reason": "expired", "count": 5, "time": datetime(2024, 4, 1), "routing-keys": ["retry"]},
        {"reason": "rejected", "count": 1, "time": datetime(2024, 5, 1), "routing-keys": ["step.y"]},
    ]
    message = FakeMessage(b"{}", headers={"x-death": deaths, PREVIOUS_DEATHS: 4})
    view = describe(message, "detect", "pixtools.detect.dead")  # type: ignore[arg-type]
    assert view.dead_lettered_by == "broker"
    assert view.reason == "delivery_limit"
    assert view.death_count == 4 + 3
    assert view.first_death_at == datetime(2024, 5, 1, tzinfo=UTC)  # naive broker times are UTC
    assert view.original_routing_key == "step.x"
    assert view.attempts is None


def test_a_body_that_is_not_an_event_still_shows_what_it_names() -> None:
    body = json.dumps({"type": "job.mystery.v9", "job_id": str(JOB_ID)}).encode()
    view = describe(FakeMessage(body), "aggregator", "q")  # type: ignore[arg-type]
    assert (view.event_type, view.job_id, view.step_id) == ("job.mystery.v9", JOB_ID, None)
    garbage = describe(FakeMessage(b"\xff not json", type="from-properties"), "aggregator", "q")  # type: ignore[arg-type]
    assert (garbage.event_type, garbage.job_id, garbage.reason) == ("from-properties", None, None)
    assert garbage.death_count == 1


def test_header_values_of_the_wrong_type_are_ignored() -> None:
    message = FakeMessage(b"{}", headers={"x-attempt": True, "x-death-at": "yesterday", "x-death": "not a list"})
    view = describe(message, "ingest", "q")  # type: ignore[arg-type]
    assert (view.attempts, view.first_death_at, view.death_count) == (None, None, 1)


def test_a_replayed_message_starts_a_new_life_and_keeps_its_history_aside() -> None:
    message = FakeMessage(
        b"payload",
        headers={
            "x-death": [{"reason": "rejected", "count": 2, "time": datetime(2024, 5, 1, tzinfo=UTC)}],
            "x-death-reason": "gave up",
            "x-first-death-queue": "q",
            "x-delivery-count": 9,
            "x-attempt": 5,
            "x-original-routing-key": "step.requested.v1.ingest",
            "traceparent": "00-abc-def-01",
        },
    )
    dead = describe(message, "ingest", "q")  # type: ignore[arg-type]
    replay = replayable(message, dead)  # type: ignore[arg-type]
    assert replay.body == b"payload"
    assert replay.headers == {
        "traceparent": "00-abc-def-01",
        "x-attempt": 1,
        PREVIOUS_DEATHS: 2,
        FIRST_DEAD_AT: "2024-05-01T00:00:00+00:00",
    }
    assert (replay.message_id, replay.correlation_id, replay.app_id) == ("event-1", "corr-1", "ingest")
    assert replay.delivery_mode == 2
