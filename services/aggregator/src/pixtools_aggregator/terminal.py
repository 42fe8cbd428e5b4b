"""The terminal job events: what a finished job tells subscribers and its webhook."""

import uuid
from collections.abc import Sequence

from pixtools_aggregator.webhooks import webhook_payload
from pixtools_contracts import (
    ErrorInfo,
    Event,
    FinishedJobState,
    JobCompleted,
    JobFailed,
    JobOutput,
    JobState,
    StepError,
    StepState,
)
from pixtools_db import Job, Output, Step, WebhookDelivery

PRODUCER = "aggregator"
SOURCE_STEP_ID = "source"
SOURCE_OP = "fetch"


def terminal_event(
    job: Job, steps: Sequence[Step], outputs: Sequence[Output], state: FinishedJobState, traceparent: str | None
) -> JobCompleted | JobFailed:
    """JobCompleted when any leaf succeeded, JobFailed otherwise; errors list a job-level reason, then failed steps."""
    errors = [
        StepError(
            step_id=step.step_id,
            op=step.op,
            error=ErrorInfo(code=step.error_code or "unknown", message=step.error_message or ""),
        )
        for step in steps
        if step.state == StepState.FAILED
    ]
    if job.error_code:
        # The source fetch is the one job-level reason a terminal event can carry: cancelled jobs get JobCancelled.
        error = ErrorInfo(code=job.error_code, message=job.error_message or "")
        errors.insert(0, StepError(step_id=SOURCE_STEP_ID, op=SOURCE_OP, error=error))
    common = {
        "job_id": job.id,
        "tenant_id": job.tenant_id,
        "correlation_id": job.correlation_id,
        "traceparent": traceparent,
        "producer": PRODUCER,
        "submitted_at": job.created_at,
        "errors": errors,
    }
    if state == JobState.FAILED:
        return JobFailed(**common)
    return JobCompleted(
        **common,
        state=state,
        outputs=[_job_output(output) for output in outputs],
        results={
            step.step_id: step.result for step in steps if step.state == StepState.SUCCEEDED and step.result is not None
        },
    )


def _job_output(output: Output) -> JobOutput:
    return JobOutput(
        step_id=output.step_id,
        op=output.op,
        name=output.name,
        key=output.key,
        content_type=output.content_type,
        bytes=output.bytes,
        sha256=output.sha256,
        width=output.width,
        height=output.height,
    )


def webhook_delivery(job: Job, event: Event, url: str, traceparent: str | None) -> WebhookDelivery:
    """A pending delivery of the job's event to its webhook."""
    return WebhookDelivery(
        id=uuid.uuid4(),
        tenant_id=job.tenant_id,
        job_id=job.id,
        url=url,
        event_type=event.type,
        payload=webhook_payload(event),
        traceparent=traceparent,
        state="pending",
        attempts=0,
    )
