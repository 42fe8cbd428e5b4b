"""Job events beside the steps: a URL source fetched or not, and a job cancelled by its owner."""

from pixtools_aggregator.batches import start_batch_job
from pixtools_aggregator.handlers import (
    Applied,
    Dependencies,
    finish_job,
    job_duration,
    lock_known_job,
    settle_job_batch,
)
from pixtools_aggregator.terminal import webhook_delivery
from pixtools_contracts import JOB_TERMINAL, JobCancelled, JobState, ObjectRef, SourceFailed, SourceFetched
from pixtools_db import Job, lifecycle

SOURCE_FAILED = "source_failed"

_INPUT_COLUMNS = {
    "input_key": "key",
    "input_content_type": "content_type",
    "input_bytes": "bytes",
    "input_sha256": "sha256",
    "input_width": "width",
    "input_height": "height",
}


async def apply_source_fetched(event: SourceFetched, deps: Dependencies) -> Applied:
    """Record the fetched original on the job, and start the job if it is still accepted."""
    if not await deps.jobs.claim_event(event.event_id):
        return Applied("duplicate")
    job = await lock_known_job(event, deps)
    # Recorded even on a finished job: its steps' events can overtake this one, and the input is a fact all the same.
    recorded = _record_input(job, event.input)
    started = job.state == JobState.ACCEPTED
    if started:
        lifecycle.start_job(job, at=event.occurred_at)
    if not (recorded or started):
        return Applied("unchanged")
    job.updated_at = deps.now
    await deps.jobs.notify(job.id)
    if started and job.batch_id is not None:
        await start_batch_job(job.batch_id, jobs=deps.jobs, now=deps.now)
    return Applied("applied")


async def apply_source_failed(event: SourceFailed, deps: Dependencies) -> Applied:
    """Fail a job whose source could not be fetched: every step is skipped and the job ends with the reason."""
    if not await deps.jobs.claim_event(event.event_id):
        return Applied("duplicate")
    job = await lock_known_job(event, deps)
    if job.state in JOB_TERMINAL or job.input_key is not None:
        # A duplicate fetch that failed after an earlier one stored the original changes nothing.
        return Applied("ignored")
    steps = await deps.jobs.steps(job.id)
    lifecycle.skip_steps(
        steps, at=deps.now, code=SOURCE_FAILED, message=f"the source could not be fetched: {event.error.code}"
    )
    await deps.jobs.notify(job.id)
    return await finish_job(job, steps, JobState.FAILED, deps, error=event.error)


async def apply_job_cancelled(event: JobCancelled, deps: Dependencies) -> Applied:
    """Send a cancelled job's webhook and settle its batch; the gateway has already cancelled the job's rows."""
    if not await deps.jobs.claim_event(event.event_id):
        return Applied("duplicate")
    job = await deps.jobs.lock_job(event.job_id)
    if job is None or job.state != JobState.CANCELLED:
        # Deleted since, or retried since: the cancellation no longer describes the job.
        return Applied("ignored")
    if job.webhook_url:
        deps.jobs.add_webhook(webhook_delivery(job, event, job.webhook_url, deps.traceparent or job.traceparent))
    applied = Applied(
        "applied", finished=JobState.CANCELLED, webhook=bool(job.webhook_url), job_duration=job_duration(job, deps)
    )
    return await settle_job_batch(job, deps, applied)


def _record_input(job: Job, stored: ObjectRef) -> bool:
    """Copy the stored original's facts onto the job; True when any of them changed."""
    changed = False
    for column, field in _INPUT_COLUMNS.items():
        value = getattr(stored, field)
        if getattr(job, column) != value:
            setattr(job, column, value)
            changed = True
    return changed
