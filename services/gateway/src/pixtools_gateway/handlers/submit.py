"""Job submission: one transaction writes the job, its steps and the outbox rows that start it."""

import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_contracts import (
    Event,
    JobSubmitted,
    ObjectRef,
    Pipeline,
    StepRequested,
    first_steps,
    flatten,
    original_key,
    plan,
    service_for,
)
from pixtools_db import Job, Step
from pixtools_db.outbox import add_events
from pixtools_gateway.errors import IdempotencyConflict
from pixtools_platform.blobstore import BlobStore


@dataclass(frozen=True)
class Upload:
    """A validated original: its bytes and what probing found."""

    data: bytes
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Submission:
    """Everything a job needs at submission."""

    tenant_id: uuid.UUID
    upload: Upload
    pipeline: Pipeline
    webhook_url: str | None
    idempotency_key: str | None
    correlation_id: str
    traceparent: str | None


def request_fingerprint(submission: Submission) -> str:
    """A hash of what makes two requests 'the same' for idempotency: content, pipeline and webhook."""
    canonical = {
        "file": hashlib.sha256(submission.upload.data).hexdigest(),
        "pipeline": submission.pipeline.model_dump(mode="json"),
        "webhook_url": submission.webhook_url,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Submitted:
    """The job, whether this request created it, and the events committed with it (none for a replay)."""

    job: Job
    created: bool
    events: list[Event]


async def submit_job(sessions: async_sessionmaker[AsyncSession], blobs: BlobStore, submission: Submission) -> Submitted:
    """Store the original, then commit job, steps and outbox together."""
    fingerprint = request_fingerprint(submission)
    if submission.idempotency_key:
        async with sessions() as session:
            existing = await _existing(session, submission, fingerprint)
            if existing is not None:
                return Submitted(existing, False, [])
    job_id = uuid.uuid4()
    key = original_key(submission.tenant_id, job_id)
    await blobs.put(key, submission.upload.data, submission.upload.content_type)
    try:
        async with sessions.begin() as session:
            job, events = _stage_job(session, job_id, key, submission, fingerprint)
    except IntegrityError:
        # A concurrent request with the same idempotency key won the race: answer with its job.
        await blobs.delete([key])
        async with sessions() as session:
            existing = await _existing(session, submission, fingerprint)
        if existing is None:
            raise
        return Submitted(existing, False, [])
    return Submitted(job, True, events)


async def _existing(session: AsyncSession, submission: Submission, fingerprint: str) -> Job | None:
    job = await session.scalar(
        select(Job).where(Job.tenant_id == submission.tenant_id, Job.idempotency_key == submission.idempotency_key)
    )
    if job is not None and job.request_hash != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return job


def _stage_job(
    session: AsyncSession, job_id: uuid.UUID, key: str, submission: Submission, fingerprint: str
) -> tuple[Job, list[Event]]:
    upload = submission.upload
    slip = plan(submission.pipeline)
    steps = flatten(slip)
    original = ObjectRef(
        key=key,
        content_type=upload.content_type,
        bytes=len(upload.data),
        sha256=hashlib.sha256(upload.data).hexdigest(),
        width=upload.width,
        height=upload.height,
    )
    job = Job(
        id=job_id,
        tenant_id=submission.tenant_id,
        state="accepted",
        pipeline=submission.pipeline.model_dump(mode="json"),
        step_count=len(steps),
        leaf_count=sum(step.is_leaf for step in steps),
        input_key=key,
        input_content_type=upload.content_type,
        input_bytes=original.bytes,
        input_sha256=original.sha256,
        input_width=upload.width,
        input_height=upload.height,
        webhook_url=submission.webhook_url,
        idempotency_key=submission.idempotency_key,
        request_hash=fingerprint,
        correlation_id=submission.correlation_id,
        traceparent=submission.traceparent,
    )
    session.add(job)
    session.add_all(
        Step(
            job_id=job_id,
            step_id=step.id,
            position=position,
            parent_id=step.parent_id,
            op=step.spec.op,
            params=step.spec.params.model_dump(mode="json"),
            is_leaf=step.is_leaf,
        )
        for position, step in enumerate(steps)
    )
    envelope = {
        "job_id": job_id,
        "tenant_id": submission.tenant_id,
        "correlation_id": submission.correlation_id,
        "traceparent": submission.traceparent,
        "producer": "gateway",
    }
    submitted = JobSubmitted(
        **envelope,
        input=original,
        pipeline=submission.pipeline,
        step_count=job.step_count,
        leaf_count=job.leaf_count,
    )
    requests = [
        StepRequested(**envelope, service=service_for(step.spec.op), input=original, step=step, remaining=rest)
        for step, rest in first_steps(slip)
    ]
    events: list[Event] = [submitted, *requests]
    add_events(session, events)
    return job, events
