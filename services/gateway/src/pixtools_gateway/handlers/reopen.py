"""Reopening failed work: steps go back to pending so a retry or a replayed command is applied again."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_contracts import (
    Event,
    JobState,
    Lane,
    ObjectRef,
    Pipeline,
    SourceRequested,
    StepRequested,
    StepState,
    plan,
    resume_at,
    service_for,
)
from pixtools_db import Job, Output, Step, lifecycle
from pixtools_gateway.adapters.notifications import notify_changed


async def reopen_steps(session: AsyncSession, *, job_id: uuid.UUID, step_ids: set[str]) -> bool:
    """Reset these steps and the steps they skipped to pending and the job to running.

    False, changing nothing, when the job is gone or cancelled (a cancelled job stays cancelled) or when none of
    these steps failed or was skipped (a later retry already ran them): there is nothing to run again.
    """
    job = await session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None or job.state == JobState.CANCELLED:
        return False
    steps = await _steps(session, job_id)
    if not lifecycle.reopen_steps(job, steps, step_ids, at=datetime.now(UTC)):
        return False
    await _reopen_batch(session, job)
    await notify_changed(session, [job_id])
    return True


async def reopen_source(session: AsyncSession, *, job_id: uuid.UUID) -> bool:
    """Make a job whose URL fetch failed wait for its source again.

    False, changing nothing, when the job is gone or cancelled, or when its original is already stored (a
    replayed fetch would only run its steps twice).
    """
    job = await session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None or job.state == JobState.CANCELLED or job.input_key is not None:
        return False
    if job.state == JobState.FAILED:
        lifecycle.await_source(job, await _steps(session, job.id), at=datetime.now(UTC))
        await _reopen_batch(session, job)
        await notify_changed(session, [job_id])
    return True


async def retry_requests(session: AsyncSession, job: Job) -> list[Event]:
    """Reopen a locked failed job's failed steps and return the commands that run them again.

    Steps that succeeded keep their outputs; each failed step reads the image its nearest ancestor produced,
    or the stored original. A job whose source never arrived fetches it again. The caller reopens the batch.
    """
    pipeline = Pipeline.model_validate(job.pipeline)
    slip = plan(pipeline)
    lane: Lane = "bulk" if job.batch_id else "interactive"
    envelope = {
        "job_id": job.id,
        "tenant_id": job.tenant_id,
        "correlation_id": job.correlation_id,
        "producer": "gateway",
    }
    if job.input_key is None:
        assert job.source_url is not None
        lifecycle.await_source(job, await _steps(session, job.id), at=datetime.now(UTC))
        return [SourceRequested(**envelope, url=job.source_url, pipeline=pipeline, remaining=slip, lane=lane)]
    steps = await _steps(session, job.id)
    failed = [step for step in steps if step.state == StepState.FAILED]
    if not failed:
        return []
    images = await _step_images(session, job.id)
    parents = {step.step_id: step.parent_id for step in steps}
    requests: list[Event] = []
    for step in failed:
        found = resume_at(slip, step.step_id)
        if found is None:
            continue
        planned, rest = found
        requests.append(
            StepRequested(
                **envelope,
                service=service_for(planned.spec.op),
                input=_input_of(step.step_id, parents, images, job),
                step=planned,
                remaining=rest,
                lane=lane,
            )
        )
    lifecycle.reopen_steps(job, steps, {step.step_id for step in failed}, at=datetime.now(UTC))
    return requests


async def _reopen_batch(session: AsyncSession, job: Job) -> None:
    if job.batch_id is not None:
        await lifecycle.reopen_batch(session, job.batch_id)


async def _steps(session: AsyncSession, job_id: uuid.UUID) -> list[Step]:
    return list(await session.scalars(select(Step).where(Step.job_id == job_id).order_by(Step.position)))


async def _step_images(session: AsyncSession, job_id: uuid.UUID) -> dict[str, ObjectRef]:
    outputs = await session.scalars(select(Output).where(Output.job_id == job_id, Output.role == "image"))
    return {
        output.step_id: ObjectRef(
            key=output.key,
            content_type=output.content_type,
            bytes=output.bytes,
            sha256=output.sha256,
            width=output.width,
            height=output.height,
        )
        for output in outputs
    }


def _input_of(step_id: str, parents: dict[str, str | None], images: dict[str, ObjectRef], job: Job) -> ObjectRef:
    """The image a step reads: its nearest ancestor's stored image (pass-through ops store none), else the original."""
    parent = parents.get(step_id)
    while parent is not None:
        if parent in images:
            return images[parent]
        parent = parents.get(parent)
    assert job.input_key is not None
    assert job.input_content_type is not None
    assert job.input_sha256 is not None
    assert job.input_bytes is not None
    return ObjectRef(
        key=job.input_key,
        content_type=job.input_content_type,
        bytes=job.input_bytes,
        sha256=job.input_sha256,
        width=job.input_width,
        height=job.input_height,
    )
