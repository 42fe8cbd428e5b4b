"""The terminal job events: what a finished job tells subscribers and its webhook."""

import uuid
from collections.abc import Mapping, Sequence

from pixtools_aggregator.ports import OutputLinks, SignedLink
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
    job: Job,
    steps: Sequence[Step],
    outputs: Sequence[Output],
    state: FinishedJobState,
    traceparent: str | None,
    *,
    signed: Mapping[str, SignedLink] | None = None,
) -> JobCompleted | JobFailed:
    """JobCompleted when any leaf succeeded, JobFailed otherwise; errors list a job-level reason, then failed steps.

    Each output says how to fetch it: the gateway's download path, and the signed link in `signed` (by key), if any.
    """
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
        outputs=[_job_output(output, (signed or {}).get(output.key)) for output in outputs],
        results={
            step.step_id: step.result for step in steps if step.state == StepState.SUCCEEDED and step.result is not None
        },
    )


async def signed_links(outputs: Sequence[Output], links: OutputLinks | None) -> dict[str, SignedLink]:
    """Signed links to the outputs, by key; none when the deployment cannot sign them (the local blob store)."""
    if links is None:
        return {}
    signed = {output.key: await links.signed_link(output.key) for output in outputs}
    return {key: link for key, link in signed.items() if link is not None}


def download_path(job_id: uuid.UUID, output_id: uuid.UUID) -> str:
    """The gateway route that streams an output to a caller of its tenant."""
    return f"/v1/jobs/{job_id}/outputs/{output_id}"


def _job_output(output: Output, link: SignedLink | None) -> JobOutput:
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
        output_id=output.id,
        download_path=download_path(output.job_id, output.id) if output.id is not None else None,
        url=link.url if link else None,
        url_expires_at=link.expires_at if link else None,
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
