"""Cancelling and retrying jobs and batches; each call is one transaction that also stages its events."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_contracts import JOB_RETRYABLE, JOB_UNFINISHED, Event, JobCancelled, JobState
from pixtools_db import Batch, Job, lifecycle
from pixtools_db.outbox import add_events
from pixtools_gateway.adapters.notifications import notify_changed
from pixtools_gateway.errors import NotFound, StateConflict
from pixtools_gateway.handlers.reopen import retry_requests


@dataclass(frozen=True)
class Controlled:
    """What a cancel or retry did: the resulting state, how many jobs it changed, and the events it staged."""

    state: JobState
    changed: int
    events: list[Event]


async def cancel_job(session: AsyncSession, *, tenant_id: uuid.UUID, job_id: uuid.UUID, reason: str) -> Controlled:
    """Cancel a queued or running job; cancelling a cancelled job again changes nothing."""
    job = await _lock_job(session, tenant_id, job_id)
    if job.state == JobState.CANCELLED:
        return Controlled(JobState.CANCELLED, 0, [])
    if job.state not in JOB_UNFINISHED:
        raise StateConflict(f"job {job_id} already finished as {job.state}")
    events = await _cancel_where(session, Job.id == job_id, reason)
    await notify_changed(session, [job_id])
    return Controlled(JobState.CANCELLED, len(events), events)


async def cancel_batch(session: AsyncSession, *, tenant_id: uuid.UUID, batch_id: uuid.UUID, reason: str) -> Controlled:
    """Cancel every queued or running job of a batch and mark the batch cancelled; repeating it is harmless."""
    batch = await _lock_batch(session, tenant_id, batch_id, with_jobs=True)
    if batch.cancelled_at is None and batch.finished_at is not None:
        raise StateConflict(f"batch {batch_id} already finished as {batch.state}")
    lifecycle.cancel_batch(batch, at=datetime.now(UTC))
    events = await _cancel_where(session, Job.batch_id == batch_id, reason)
    await notify_changed(session, [batch_id, *(event.job_id for event in events)])
    return Controlled(JobState.CANCELLED, len(events), events)


async def retry_job(session: AsyncSession, *, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Controlled:
    """Run a failed or partially failed job's failed steps again, keeping what succeeded."""
    job = await _lock_job(session, tenant_id, job_id)
    if job.state not in JOB_RETRYABLE:
        raise StateConflict(f"only failed or partially failed jobs can be retried; job {job_id} is {job.state}")
    events = await retry_requests(session, job)
    if not events:
        raise StateConflict(f"job {job_id} has no failed step to run again")
    add_events(session, events)
    if job.batch_id is not None:
        await lifecycle.reopen_batch(session, job.batch_id)
    await notify_changed(session, [job.id])
    return Controlled(JobState(job.state), 1, events)


async def retry_batch(session: AsyncSession, *, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> Controlled:
    """Retry every failed or partially failed job of a batch."""
    batch = await _lock_batch(session, tenant_id, batch_id, with_jobs=True)
    if batch.cancelled_at is not None:
        raise StateConflict(f"batch {batch_id} was cancelled; cancelled batches are not retried")
    jobs = (
        await session.scalars(
            select(Job).where(Job.batch_id == batch_id, Job.state.in_(JOB_RETRYABLE)).order_by(Job.batch_position)
        )
    ).all()
    events: list[Event] = []
    retried = 0
    for job in jobs:
        job_events = await retry_requests(session, job)
        retried += bool(job_events)
        events += job_events
    if not retried:
        raise StateConflict(f"batch {batch_id} has no failed jobs to retry")
    add_events(session, events)
    await lifecycle.reopen_batch(session, batch_id)
    await notify_changed(session, [batch_id, *{event.job_id for event in events}])
    return Controlled(JobState.RUNNING, retried, events)


async def _cancel_where(session: AsyncSession, which: ColumnElement[bool], reason: str) -> list[Event]:
    """Cancel the unfinished jobs matching `which` and stage a `job.cancelled.v1` for each.

    The caller notifies listeners of the jobs (and batch) it changed.
    """
    cancelled = await lifecycle.cancel_jobs(session, which, reason=reason)
    events: list[Event] = [
        JobCancelled(job_id=job_id, tenant_id=tenant, correlation_id=correlation_id, producer="gateway", reason=reason)
        for job_id, tenant, correlation_id in cancelled
    ]
    add_events(session, events)
    return events


async def _lock_job(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    job = await session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id).with_for_update())
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


async def _lock_batch(session: AsyncSession, tenant_id: uuid.UUID, batch_id: uuid.UUID, *, with_jobs: bool) -> Batch:
    """Lock the batch's jobs (in id order), then the batch: the aggregator locks a job, then its batch.

    Taking them in the same order means a job finishing while its batch is cancelled waits instead of deadlocking.
    """
    owned = select(Batch.id).where(Batch.id == batch_id, Batch.tenant_id == tenant_id)
    if await session.scalar(owned) is None:
        raise NotFound(f"no batch {batch_id}")
    if with_jobs:
        await session.execute(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.id).with_for_update())
    batch = await session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update(key_share=True))
    assert batch is not None  # batches are deleted only by retention, with their jobs
    return batch
