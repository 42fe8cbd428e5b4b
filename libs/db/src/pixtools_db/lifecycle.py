"""The one writer of job, step and batch state; every move is checked against the contracts' table.

The aggregator decides what happens to a job as its events arrive, and the gateway decides what its owner
asked for (cancel, retry, a replayed command); both write the outcome only through these functions, so the
rules in `pixtools_contracts` (forward-only steps, the allowed job moves, terminal states) hold everywhere.
Functions that take rows change them in the caller's transaction; functions that take a session write with
one statement. Nothing here commits.
"""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_contracts import (
    JOB_UNFINISHED,
    STEP_REOPENABLE,
    STEP_UNFINISHED,
    EndedJobState,
    FinishedBatchState,
    JobState,
    StepState,
    descendants,
    job_may_move,
    step_may_advance,
)
from pixtools_db.schema import Batch, Job, Step

CANCELLED_CODE = "cancelled"
"""The error code of a cancelled job and of the steps its cancellation skipped."""


class IllegalMove(Exception):
    """A write asked for a state change that the contracts' table does not allow: a bug in its caller."""


def _move_job(job: Job, target: JobState, *, only_from: JobState | None = None) -> None:
    if not job_may_move(job.state, target) or (only_from is not None and job.state != only_from):
        raise IllegalMove(f"job {job.id} cannot move from {job.state} to {target} here")
    job.state = target


# Steps


def start_step(step: Step, *, at: datetime) -> bool:
    """Mark a pending step running; False, changing nothing, when it has already moved on."""
    if not step_may_advance(step.state, StepState.RUNNING):
        return False
    step.state = StepState.RUNNING
    step.started_at = at
    return True


def complete_step(step: Step, *, started_at: datetime, finished_at: datetime, result: dict[str, Any] | None) -> bool:
    """Mark an unfinished step succeeded with its result; False, changing nothing, when it already ended."""
    if not step_may_advance(step.state, StepState.SUCCEEDED):
        return False
    step.state = StepState.SUCCEEDED
    step.started_at = step.started_at or started_at
    step.finished_at = finished_at
    step.result = result
    return True


def fail_step(step: Step, *, started_at: datetime | None, finished_at: datetime, code: str, message: str) -> bool:
    """Mark an unfinished step failed with its reason; False, changing nothing, when it already ended."""
    if not step_may_advance(step.state, StepState.FAILED):
        return False
    step.state = StepState.FAILED
    step.started_at = step.started_at or started_at
    step.finished_at = finished_at
    step.error_code = code
    step.error_message = message
    return True


def skip_steps(steps: Iterable[Step], *, at: datetime, code: str, message: str) -> None:
    """Mark every unfinished step among these skipped, with the reason; ended steps keep their state."""
    for step in steps:
        if step_may_advance(step.state, StepState.SKIPPED):
            step.state = StepState.SKIPPED
            step.finished_at = at
            step.error_code = code
            step.error_message = message


def reopen_steps(job: Job, steps: Sequence[Step], step_ids: set[str], *, at: datetime) -> bool:
    """Reset the failed or skipped steps among these and their descendants to pending, and the job to running.

    False, changing nothing, when none of them failed or was skipped: there is nothing to run again.
    """
    reopened = _reopenable(steps, step_ids)
    if not reopened:
        return False
    _reset(reopened)
    _move_job(job, JobState.RUNNING)
    _clear_job_end(job, at)
    return True


def await_source(job: Job, steps: Sequence[Step], *, at: datetime) -> None:
    """Make a job whose source fetch failed wait for its source again: every step pending, the job accepted."""
    _reset([step for step in steps if step.state in STEP_REOPENABLE])
    _move_job(job, JobState.ACCEPTED)
    _clear_job_end(job, at)


def _reopenable(steps: Sequence[Step], step_ids: set[str]) -> list[Step]:
    parents = {step.step_id: step.parent_id for step in steps}
    targets = set(step_ids)
    for step_id in step_ids:
        targets |= descendants(parents, step_id)
    return [step for step in steps if step.step_id in targets and step.state in STEP_REOPENABLE]


def _reset(steps: Iterable[Step]) -> None:
    for step in steps:
        step.state = StepState.PENDING
        step.started_at = step.finished_at = None
        step.error_code = step.error_message = None
        step.result = None


def _clear_job_end(job: Job, at: datetime) -> None:
    job.finished_at = None
    job.error_code = job.error_message = None
    job.updated_at = at


# Jobs


def start_job(job: Job, *, at: datetime) -> None:
    """Move an accepted job to running."""
    _move_job(job, JobState.RUNNING, only_from=JobState.ACCEPTED)
    job.started_at = at


def finish_job(
    job: Job, state: EndedJobState, *, at: datetime, error_code: str | None = None, error_message: str | None = None
) -> None:
    """End a job in a terminal state; a job that failed as a whole (its source never came) carries the reason."""
    _move_job(job, state)
    job.finished_at = at
    job.updated_at = at
    if error_code is not None:
        job.error_code = error_code
        job.error_message = error_message


async def cancel_jobs(
    session: AsyncSession, which: ColumnElement[bool], *, reason: str
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """Cancel the unfinished jobs matching `which` and skip their unfinished steps, with one statement each.

    Returns (id, tenant_id, correlation_id) of every job it cancelled; jobs already ended are left as they are.
    """
    result = await session.execute(
        update(Job)
        .where(which, Job.state.in_(JOB_UNFINISHED))
        .values(
            state=JobState.CANCELLED,
            finished_at=func.now(),
            updated_at=func.now(),
            error_code=CANCELLED_CODE,
            error_message=reason,
        )
        .returning(Job.id, Job.tenant_id, Job.correlation_id)
    )
    cancelled = [(job_id, tenant_id, correlation_id) for job_id, tenant_id, correlation_id in result]
    if cancelled:
        await session.execute(
            update(Step)
            .where(Step.job_id.in_([job_id for job_id, _, _ in cancelled]), Step.state.in_(STEP_UNFINISHED))
            .values(state=StepState.SKIPPED, finished_at=func.now(), error_code=CANCELLED_CODE, error_message=reason)
        )
    return cancelled


# Batches

_START_BATCH = (
    update(Batch)
    .where(Batch.id == bindparam("batch_id"), Batch.state == JobState.ACCEPTED)
    .values(state=JobState.RUNNING, updated_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


async def start_batch(session: AsyncSession, batch_id: uuid.UUID, *, at: datetime) -> None:
    """Move the batch from accepted to running; a batch in any other state is not even locked."""
    await session.execute(_START_BATCH, {"batch_id": batch_id, "now": at})


def finish_batch(batch: Batch, state: FinishedBatchState, *, at: datetime) -> None:
    """End a batch whose every job is terminal."""
    batch.state = state
    batch.finished_at = at
    batch.updated_at = at


def cancel_batch(batch: Batch, *, at: datetime) -> bool:
    """Mark a batch cancelled; False when it already was. Its jobs are cancelled with `cancel_jobs`."""
    if batch.cancelled_at is not None:
        return False
    batch.cancelled_at = batch.updated_at = at
    batch.state = JobState.CANCELLED
    return True


async def reopen_batch(session: AsyncSession, batch_id: uuid.UUID) -> None:
    """A batch whose child runs again is no longer finished; a cancelled batch stays cancelled."""
    await session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.cancelled_at.is_(None))
        .values(state=JobState.RUNNING, finished_at=None, updated_at=func.now())
    )
