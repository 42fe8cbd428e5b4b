"""One example of every event, published in the AsyncAPI document and checked against its schema."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pixtools_contracts._events import (
    DetectedObject,
    ErrorInfo,
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobOutput,
    JobSubmitted,
    ObjectRef,
    ObjectsDetected,
    SourceFailed,
    SourceFetched,
    SourceRequested,
    StepCompleted,
    StepError,
    StepFailed,
    StepOutput,
    StepRequested,
    StepStarted,
)
from pixtools_contracts._pipeline import Pipeline, first_steps, plan
from pixtools_contracts._states import JobState

JOB_ID = UUID("3f2b8c1e-5d4a-4c7b-9e1f-0a2b3c4d5e6f")
TENANT_ID = UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
OUTPUT_ID = UUID("7d6c5b4a-3928-4716-a5b4-c3d2e1f0a9b8")
AT = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_PIPELINE = Pipeline.model_validate(
    [{"op": "resize", "params": {"width": 800}}, {"op": "convert", "params": {"format": "webp"}}]
)
_SLIP = plan(_PIPELINE)
_ORIGINAL = ObjectRef(
    key=f"jobs/{TENANT_ID}/{JOB_ID}/original",
    content_type="image/jpeg",
    bytes=482113,
    sha256="a" * 64,
    width=1920,
    height=1080,
)
_WEBP = ObjectRef(
    key=f"jobs/{TENANT_ID}/{JOB_ID}/steps/1/image.webp",
    content_type="image/webp",
    bytes=51234,
    sha256="b" * 64,
    width=800,
)


def _envelope(producer: str, number: int) -> dict[str, Any]:
    return {
        "event_id": UUID(int=number),
        "occurred_at": AT + timedelta(seconds=number),
        "job_id": JOB_ID,
        "tenant_id": TENANT_ID,
        "correlation_id": "req-5f1c2a",
        "traceparent": TRACEPARENT,
        "producer": producer,
    }


def example_events() -> list[Event]:
    """One realistic instance of every event type, with fixed ids and times."""
    (first, rest), *_ = first_steps(_SLIP)
    error = ErrorInfo(code="image.corrupt", message="the image data ends early")
    output = StepOutput(**_WEBP.model_dump(), name="image", role="image")
    detection = DetectedObject(xyxy=(10.0, 20.0, 210.0, 380.0), score=0.91, class_id=0, class_name="person")
    job_output = JobOutput(
        step_id="1",
        op="convert",
        name="image",
        **_WEBP.model_dump(),
        output_id=OUTPUT_ID,
        download_path=f"/v1/jobs/{JOB_ID}/outputs/{OUTPUT_ID}",
        url=f"https://pixtools.s3.amazonaws.com/{_WEBP.key}?X-Amz-Expires=86400&X-Amz-Signature=abc123",
        url_expires_at=AT + timedelta(days=1),
    )
    return [
        JobSubmitted(**_envelope("gateway", 1), input=_ORIGINAL, pipeline=_PIPELINE, step_count=2, leaf_count=1),
        StepRequested(**_envelope("gateway", 2), service="ingest", input=_ORIGINAL, step=first, remaining=rest),
        StepStarted(**_envelope("ingest", 3), step_id="0", op="resize"),
        StepCompleted(
            **_envelope("ingest", 4),
            step_id="1",
            op="convert",
            started_at=AT,
            finished_at=AT + timedelta(seconds=1),
            image=_WEBP,
            outputs=[output],
        ),
        StepFailed(**_envelope("ingest", 5), step_id="0", op="resize", started_at=AT, finished_at=AT, error=error),
        JobCompleted(**_envelope("aggregator", 6), state=JobState.SUCCEEDED, outputs=[job_output], submitted_at=AT),
        JobFailed(
            **_envelope("aggregator", 7), errors=[StepError(step_id="0", op="resize", error=error)], submitted_at=AT
        ),
        JobCancelled(**_envelope("gateway", 8)),
        ObjectsDetected(
            **_envelope("detect", 9),
            step_id="0",
            image=_ORIGINAL,
            model_id="yolox_nano",
            model_sha256="c" * 64,
            detections=[detection],
            counts={"person": 1},
        ),
        SourceRequested(
            **_envelope("gateway", 10), url="https://example.com/photo.jpg", pipeline=_PIPELINE, remaining=_SLIP
        ),
        SourceFetched(
            **_envelope("ingest", 11),
            url="https://example.com/photo.jpg",
            final_url="https://cdn.example.com/photo.jpg",
            input=_ORIGINAL,
            attempts=1,
        ),
        SourceFailed(
            **_envelope("ingest", 12),
            url="https://example.com/missing.jpg",
            error=ErrorInfo(code="fetch.http_4xx", message="404 Not Found"),
            attempts=1,
        ),
    ]


def example_payloads() -> dict[str, dict[str, Any]]:
    """The example of every event type as the JSON a subscriber receives, keyed by type."""
    return {event.type: event.model_dump(mode="json") for event in example_events()}
