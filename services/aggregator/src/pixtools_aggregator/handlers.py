"""The job state machine: plain async functions of (event, dependencies) for step events, and how a job ends."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from pixtools_aggregator.batches import settle_batch, start_batch_job
from pixtools_aggregator.errors import UnknownJob, UnknownStep
from pixtools_aggregator.ports import JobRepository, OutputLinks
from pixtools_aggregator.terminal import signed_links, terminal_event, webhook_delivery
from pixtools_contracts import (
    JOB_TERMINAL,
    EndedJobState,
    ErrorInfo,
    Event,
    FinishedBatchState,
    FinishedJobState,
    JobState,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepStarted,
    all_terminal,
    descendants,
    finished_state,
)
from pixtools_db import Job, Output, Step, lifecycle

UPSTREAM_FAILED = "upstream_failed"

StepEvent = StepStarted | StepCompleted | StepFailed


@dataclass(frozen=True)
class Dependencies:
    """What a handler works with: the jobs in this transaction, the time, the trace to continue, and output links."""

    jobs: JobRepository
    now: datetime
    traceparent: str | None = None
    links: OutputLinks | None = None


@dataclass(frozen=True)
class Applied:
    """What applying one event did: its outcome, how the job or its batch ended, and whether a webhook was queued.

    Events and webhooks it staged commit with the state, and go out from the commit's hooks.
    """

    outcome: Literal["applied", "unchanged", "duplicate", "ignored"]
    finished: EndedJobState | None = None
    webhook: bool = False
    batch_finished: FinishedBatchState | None = None
    job_duration: timedelta | None = None
    """How long the finished job took, from accepted to terminal."""


@dataclass
class _Opened:
    job: Job
    steps: list[Step]
    step: Step
    changed: bool
    started: bool


async def apply_step_started(event: StepStarted, deps: Dependencies) -> Applied:
    """Mark a step running, unless it has already moved on."""
    opened = await _open(event, deps)
    if isinstance(opened, Applied):
        return opened
    opened.changed |= lifecycle.start_step(opened.step, at=event.occurred_at)
    return await _settle(opened, deps)


async def apply_step_completed(event: StepCompleted, deps: Dependencies) -> Applied:
    """Record a step's result and outputs; finish the job when it was the last step."""
    opened = await _open(event, deps)
    if isinstance(opened, Applied):
        return opened
    step = opened.step
    result = dict(event.result) if event.result is not None else None
    if lifecycle.complete_step(step, started_at=event.started_at, finished_at=event.finished_at, result=result):
        await deps.jobs.add_outputs([_output(event, step, output) for output in event.outputs])
        opened.changed = True
    return await _settle(opened, deps)


async def apply_step_failed(event: StepFailed, deps: Dependencies) -> Applied:
    """Record a step's failure and skip every step downstream of it."""
    opened = await _open(event, deps)
    if isinstance(opened, Applied):
        return opened
    step, error = opened.step, event.error
    failed = lifecycle.fail_step(
        step, started_at=event.started_at, finished_at=event.finished_at, code=error.code, message=error.message
    )
    if failed:
        skipped = descendants({other.step_id: other.parent_id for other in opened.steps}, step.step_id)
        lifecycle.skip_steps(
            (other for other in opened.steps if other.step_id in skipped),
            at=event.finished_at,
            code=UPSTREAM_FAILED,
            message=f"step {step.step_id} failed: {error.code}",
        )
        opened.changed = True
    return await _settle(opened, deps)


async def _open(event: StepEvent, deps: Dependencies) -> _Opened | Applied:
    """Dedupe the event, lock its job and find its step; an Applied means there is nothing to do."""
    if not await deps.jobs.claim_event(event.event_id):
        return Applied("duplicate")
    job = await lock_known_job(event, deps)
    if job.state in JOB_TERMINAL:
        # Late results of finished or cancelled jobs change nothing.
        return Applied("ignored")
    steps = await deps.jobs.steps(job.id)
    step = next((candidate for candidate in steps if candidate.step_id == event.step_id), None)
    if step is None:
        raise UnknownStep(f"job {job.id} has no step {event.step_id!r}")
    started = job.state == JobState.ACCEPTED
    if started:
        lifecycle.start_job(job, at=_started_at(event))
    return _Opened(job=job, steps=steps, step=step, changed=started, started=started)


async def _settle(opened: _Opened, deps: Dependencies) -> Applied:
    """Finish the job when every step is terminal, and tell listeners about any change."""
    if not opened.changed:
        return Applied("unchanged")
    job, steps = opened.job, opened.steps
    job.updated_at = deps.now
    await deps.jobs.notify(job.id)
    if not all_terminal(step.state for step in steps):
        if opened.started and job.batch_id is not None:
            await start_batch_job(job.batch_id, jobs=deps.jobs, now=deps.now)
        return Applied("applied")
    return await finish_job(job, steps, finished_state(step.state for step in steps if step.is_leaf), deps)


async def lock_known_job(event: Event, deps: Dependencies) -> Job:
    """The event's job, locked; a job that does not exist is an error the event can never get past."""
    job = await deps.jobs.lock_job(event.job_id)
    if job is None:
        raise UnknownJob(f"job {event.job_id} does not exist")
    return job


async def finish_job(
    job: Job, steps: list[Step], state: FinishedJobState, deps: Dependencies, *, error: ErrorInfo | None = None
) -> Applied:
    """End a job whose steps are all terminal: stage its terminal event and webhook, then settle its batch.

    `error` is the reason a job failed as a whole (its source never arrived), as opposed to any of its steps.
    """
    if error is None:
        lifecycle.finish_job(job, state, at=deps.now)
    else:
        lifecycle.finish_job(job, state, at=deps.now, error_code=error.code, error_message=error.message)
    outputs = await deps.jobs.final_outputs(job.id) if state != JobState.FAILED else []
    signed = await signed_links(outputs, deps.links)
    event = terminal_event(job, steps, outputs, state, deps.traceparent, signed=signed)
    deps.jobs.stage(event)
    if job.webhook_url:
        deps.jobs.add_webhook(webhook_delivery(job, event, job.webhook_url, deps.traceparent or job.traceparent))
    applied = Applied("applied", finished=state, webhook=bool(job.webhook_url), job_duration=job_duration(job, deps))
    return await settle_job_batch(job, deps, applied)


async def settle_job_batch(job: Job, deps: Dependencies, applied: Applied) -> Applied:
    """After a job became terminal: settle its batch, if it has one, and add what that did to `applied`."""
    if job.batch_id is None:
        return applied
    settled = await settle_batch(job.batch_id, jobs=deps.jobs, now=deps.now, traceparent=deps.traceparent)
    if settled is None:
        return applied
    return replace(applied, webhook=applied.webhook or settled.webhook, batch_finished=settled.state)


def job_duration(job: Job, deps: Dependencies) -> timedelta:
    """From the job's acceptance to its end (now, if no end was recorded)."""
    return (job.finished_at or deps.now) - job.created_at


def _started_at(event: Event) -> datetime:
    started = getattr(event, "started_at", None)
    return started if isinstance(started, datetime) else event.occurred_at


def _output(event: StepCompleted, step: Step, output: StepOutput) -> Output:
    return Output(
        job_id=event.job_id,
        step_id=step.step_id,
        op=step.op,
        name=output.name,
        role=output.role,
        is_final=output.role == "artifact" or step.is_leaf,
        key=output.key,
        content_type=output.content_type,
        bytes=output.bytes,
        sha256=output.sha256,
        width=output.width,
        height=output.height,
    )
