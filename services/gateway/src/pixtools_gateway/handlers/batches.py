"""Batch creation: dedupe the items, then commit the batch, its jobs and their outbox rows in one transaction."""

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_contracts import Event, JobState, ObjectRef, Pipeline
from pixtools_db import Batch
from pixtools_gateway.errors import BatchTooLarge, IdempotencyConflict, InvalidRequest
from pixtools_gateway.handlers.submit import BatchPlace, Submission, Upload, stage_job, store_original
from pixtools_platform.blobstore import BlobStore

MAX_ITEMS = 1000
BatchSource = Literal["urls", "csv", "files"]


@dataclass(frozen=True)
class BatchItem:
    """One item as the client sent it: a URL or an uploaded file, and the client's optional id."""

    item_id: str | None
    url: str | None = None
    upload: Upload | None = None

    def identity(self) -> str:
        """What makes two items duplicates: the same URL, or the same file content."""
        if self.upload is not None:
            return "sha256:" + hashlib.sha256(self.upload.data).hexdigest()
        return "url:" + (self.url or "")


@dataclass(frozen=True)
class BatchRequest:
    """A validated batch submission."""

    tenant_id: uuid.UUID
    source: BatchSource
    items: list[BatchItem]
    pipeline: Pipeline
    webhook_url: str | None
    idempotency_key: str | None
    correlation_id: str
    traceparent: str | None


@dataclass(frozen=True)
class Duplicate:
    """An item dropped because an earlier item has the same URL or content."""

    index: int
    item_id: str | None
    url: str | None
    filename: str | None
    duplicate_of: int


@dataclass
class CreatedBatch:
    """The batch, whether this request created it, and the events committed with it."""

    batch: Batch
    created: bool
    events: list[Event] = field(default_factory=list)


def check_size(count: int) -> None:
    """Refuse more than MAX_ITEMS items before anything is stored."""
    if count > MAX_ITEMS:
        raise BatchTooLarge(f"a batch holds at most {MAX_ITEMS} items; this one has {count}")
    if count == 0:
        raise InvalidRequest("the batch has no items")


def dedupe(items: list[BatchItem]) -> tuple[list[tuple[int, BatchItem]], list[Duplicate]]:
    """Keep the first of every URL or file content, with its original index; report the rest."""
    first: dict[str, int] = {}
    kept: list[tuple[int, BatchItem]] = []
    duplicates: list[Duplicate] = []
    for index, item in enumerate(items):
        identity = item.identity()
        if identity in first:
            duplicates.append(
                Duplicate(
                    index=index,
                    item_id=item.item_id,
                    url=item.url,
                    filename=item.upload.name if item.upload else None,
                    duplicate_of=first[identity],
                )
            )
            continue
        first[identity] = index
        kept.append((index, item))
    return kept, duplicates


def request_fingerprint(request: BatchRequest) -> str:
    """A hash of what makes two batch requests 'the same' for idempotency."""
    canonical = {
        "source": request.source,
        "items": [[item.item_id, item.identity()] for item in request.items],
        "pipeline": request.pipeline.model_dump(mode="json"),
        "webhook_url": request.webhook_url,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


async def create_batch(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    request: BatchRequest,
    *,
    admit: Callable[[], Awaitable[None]],
) -> CreatedBatch:
    """Store uploaded originals, then commit the batch and every job with its outbox rows, or nothing.

    `admit` (the unfinished-jobs quota) runs only for a new batch: a replay answers with its first batch.
    """
    check_size(len(request.items))
    fingerprint = request_fingerprint(request)
    if request.idempotency_key:
        async with sessions() as session:
            existing = await _existing(session, request, fingerprint)
            if existing is not None:
                return CreatedBatch(existing, False)
    await admit()
    kept, duplicates = dedupe(request.items)
    job_ids = [uuid.uuid4() for _ in kept]
    originals = await asyncio.gather(
        *(
            store_original(blobs, request.tenant_id, job_id, item.upload)
            for job_id, (_, item) in zip(job_ids, kept, strict=True)
        )
    )
    try:
        async with sessions.begin() as session:
            batch, events = _stage_batch(session, request, kept, duplicates, job_ids, originals, fingerprint)
    except IntegrityError:
        await blobs.delete([original.key for original in originals if original is not None])
        async with sessions() as session:
            existing = await _existing(session, request, fingerprint)
        if existing is None:
            raise
        return CreatedBatch(existing, False)
    return CreatedBatch(batch, True, events)


def _stage_batch(
    session: AsyncSession,
    request: BatchRequest,
    kept: list[tuple[int, BatchItem]],
    duplicates: list[Duplicate],
    job_ids: list[uuid.UUID],
    originals: list[ObjectRef | None],
    fingerprint: str,
) -> tuple[Batch, list[Event]]:
    batch = Batch(
        id=uuid.uuid4(),
        tenant_id=request.tenant_id,
        state=JobState.ACCEPTED,
        source=request.source,
        pipeline=request.pipeline.model_dump(mode="json"),
        item_count=len(kept),
        duplicates=[_duplicate_json(duplicate) for duplicate in duplicates],
        webhook_url=request.webhook_url,
        idempotency_key=request.idempotency_key,
        request_hash=fingerprint,
        correlation_id=request.correlation_id,
        traceparent=request.traceparent,
    )
    session.add(batch)
    events: list[Event] = []
    for position, ((_, item), job_id, original) in enumerate(zip(kept, job_ids, originals, strict=True)):
        submission = Submission(
            tenant_id=request.tenant_id,
            pipeline=request.pipeline,
            webhook_url=None,  # the batch has one webhook, fired when every item is terminal
            idempotency_key=None,
            correlation_id=request.correlation_id,
            traceparent=request.traceparent,
            upload=item.upload,
            source_url=item.url,
        )
        place = BatchPlace(batch_id=batch.id, position=position, item_id=item.item_id)
        _, job_events = stage_job(session, job_id, submission, original, batch=place)
        events += job_events
    return batch, events


def _duplicate_json(duplicate: Duplicate) -> dict[str, Any]:
    return {
        "index": duplicate.index,
        "id": duplicate.item_id,
        "url": duplicate.url,
        "filename": duplicate.filename,
        "duplicate_of": duplicate.duplicate_of,
    }


async def _existing(session: AsyncSession, request: BatchRequest, fingerprint: str) -> Batch | None:
    batch = await session.scalar(
        select(Batch).where(Batch.tenant_id == request.tenant_id, Batch.idempotency_key == request.idempotency_key)
    )
    if batch is not None and batch.request_hash != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different batch")
    return batch
