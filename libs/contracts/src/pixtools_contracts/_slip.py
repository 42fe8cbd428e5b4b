"""Building the next messages of a routing slip; shared by every stage service."""

from datetime import UTC, datetime
from typing import Any

from pixtools_contracts._events import (
    ErrorInfo,
    Event,
    ObjectRef,
    SourceRequested,
    StepFailed,
    StepRequested,
    StepStarted,
)
from pixtools_contracts._operations import service_for
from pixtools_contracts._pipeline import first_steps


def envelope_of(event: Event, producer: str) -> dict[str, Any]:
    """The envelope fields a follow-up event inherits: job, tenant and correlation ids, and its producer."""
    return {
        "job_id": event.job_id,
        "tenant_id": event.tenant_id,
        "correlation_id": event.correlation_id,
        "producer": producer,
    }


def next_requests(request: StepRequested | SourceRequested, image: ObjectRef, producer: str) -> list[StepRequested]:
    """One request per next step of the slip, each reading `image`, in the request's lane."""
    return [
        StepRequested(
            **envelope_of(request, producer),
            service=service_for(step.spec.op),
            input=image,
            step=step,
            remaining=rest,
            lane=request.lane,
        )
        for step, rest in first_steps(request.remaining)
    ]


def step_started(request: StepRequested, producer: str) -> StepStarted:
    """Announce that a step began."""
    return StepStarted(**envelope_of(request, producer), step_id=request.step.id, op=request.step.spec.op)


def step_failed(
    request: StepRequested, code: str, message: str, producer: str, started_at: datetime | None = None
) -> StepFailed:
    """Report a step failure with a stable error class."""
    return StepFailed(
        **envelope_of(request, producer),
        step_id=request.step.id,
        op=request.step.spec.op,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        error=ErrorInfo(code=code, message=message),
    )


def output_key(request: StepRequested, name: str, extension: str) -> str:
    """The deterministic key of a step output, so a retried step overwrites instead of duplicating."""
    return f"jobs/{request.tenant_id}/{request.job_id}/steps/{request.step.id}/{name}.{extension}"


def original_key(tenant_id: object, job_id: object) -> str:
    """The key of a job's stored original."""
    return f"jobs/{tenant_id}/{job_id}/original"
