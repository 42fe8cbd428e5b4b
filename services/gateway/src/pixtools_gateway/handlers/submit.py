"""Job submission: one transaction writes the job, its steps and the outbox rows that start it."""

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_contracts import (
    Event,
    JobState,
    JobSubmitted,
    Lane,
    ObjectRef,
    Pipeline,
    SourceRequested,
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
    name: str | None = None


@dataclass(frozen=True)
class Submission:
    """Everything a job needs at submission: an uploaded original or a URL for ingest to fetch."""

    tenant_id: uuid.UUID
    pipeline: Pipeline
    webhook_url: str | None
    idempotency_key: str | None
    correlation_id: str
    traceparent: str | None
    upload: Upload | None = None
    source_url: str | None = None


@dataclass(frozen=True)
class BatchPlace:
    """Where a job sits in a batch: the batch, its position and the client's item id."""

    batch_id: uuid.UUID
    position: int
    item_id: str | None


def request_fingerprint(submission: Submission) -> str:
    """A hash of what makes two requests 'the same' for idempotency: source, pipeline and webhook."""
    canonical = {
        "file": hashlib.sha256(submission.upload.data).hexdigest() if submission.upload else None,
        "source_url": submission.source_url,
        "pipeline": submission.pipeline.model_dump(mode="json"),
        "webhook_url": submission.webhook_url,
    }
    if submission.source_url is None:
        del canonical["source_url"]  # keeps the fingerprints of upload jobs stored before URL import existed
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Submitted:
    """The job, whether this request created it, and the events committed with it (none for a replay)."""

    job: Job
    created: bool
    events: list[Event]


async def submit_job(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    submission: Submission,
    *,
    admit: Callable[[], Awaitable[None]],
) -> Submitted:
    """Store the original (for an upload), then commit job, steps and outbox together.

    `admit` (the unfinished-jobs quota) runs only for a new job: a replay answers with its first job even when
    the tenant is at its quota, since it adds nothing.
    """
    fingerprint = request_fingerprint(submission)
    if submission.idempotency_key:
        async with sessions() as session:
            existing = await _existing(session, submission, fingerprint)
            if existing is not None:
                return Submitted(existing, False, [])
    await admit()
    job_id = uuid.uuid4()
    original = await store_original(blobs, submission.tenant_id, job_id, submission.upload)
    try:
        async with sessions.begin() as session:
            job, events = stage_job(session, job_id, submission, original, fingerprint=fingerprint)
    except IntegrityError:
        # A concurrent request with the same idempotency key won the race: answer with its job.
        if original is not None:
            await blobs.delete([original.key])
        async with sessions() as session:
            existing = await _existing(session, submission, fingerprint)
        if existing is None:
            raise
        return Submitted(existing, False, [])
    return Submitted(job, True, events)


async def store_original(
    blobs: BlobStore, tenant_id: uuid.UUID, job_id: uuid.UUID, upload: Upload | None
) -> ObjectRef | None:
    """Store an uploaded original under the job's key; None for a URL job, whose original ingest fetches."""
    if upload is None:
        return None
    key = original_key(tenant_id, job_id)
    await blobs.put(key, upload.data, upload.content_type)
    return ObjectRef(
        key=key,
        content_type=upload.content_type,
        bytes=len(upload.data),
        sha256=hashlib.sha256(upload.data).hexdigest(),
        width=upload.width,
        height=upload.height,
    )


async def _existing(session: AsyncSession, submission: Submission, fingerprint: str) -> Job | None:
    job = await session.scalar(
        select(Job).where(Job.tenant_id == submission.tenant_id, Job.idempotency_key == submission.idempotency_key)
    )
    if job is not None and job.request_hash != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return job


def stage_job(
    session: AsyncSession,
    job_id: uuid.UUID,
    submission: Submission,
    original: ObjectRef | None,
    *,
    fingerprint: str | None = None,
    batch: BatchPlace | None = None,
) -> tuple[Job, list[Event]]:
    """Add the job, its steps and the outbox rows that start it to the session; return the job and those events."""
    slip = plan(submission.pipeline)
    steps = flatten(slip)
    upload = submission.upload
    job = Job(
        id=job_id,
        tenant_id=submission.tenant_id,
        state=JobState.ACCEPTED,
        pipeline=submission.pipeline.model_dump(mode="json"),
        step_count=len(steps),
        leaf_count=sum(step.is_leaf for step in steps),
        input_key=original.key if original else None,
        input_content_type=original.content_type if original else None,
        input_bytes=original.bytes if original else None,
        input_sha256=original.sha256 if original else None,
        input_width=original.width if original else None,
        input_height=original.height if original else None,
        source_url=submission.source_url,
        source_name=upload.name if upload else None,
        batch_id=batch.batch_id if batch else None,
        batch_position=batch.position if batch else None,
        item_id=batch.item_id if batch else None,
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
    lane: Lane = "bulk" if batch else "interactive"
    events: list[Event]
    if original is None:
        assert submission.source_url is not None
        # job.submitted.v1 promises a stored original, so ingest announces a URL job once it has fetched it.
        events = [
            SourceRequested(
                **envelope, url=submission.source_url, pipeline=submission.pipeline, remaining=slip, lane=lane
            )
        ]
    else:
        submitted = JobSubmitted(
            **envelope,
            input=original,
            pipeline=submission.pipeline,
            step_count=job.step_count,
            leaf_count=job.leaf_count,
        )
        requests = [
            StepRequested(
                **envelope, service=service_for(step.spec.op), input=original, step=step, remaining=rest, lane=lane
            )
            for step, rest in first_steps(slip)
        ]
        events = [submitted, *requests]
    add_events(session, events)
    return job, events
