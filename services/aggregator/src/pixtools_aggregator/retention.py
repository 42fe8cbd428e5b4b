"""Retention: jobs, their objects and the rows kept about them are deleted once they are old enough."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pixtools_aggregator import metrics
from pixtools_platform.blobstore import BlobStore

log = logging.getLogger(__name__)

ROW_CHUNK = 5000
"""Batches, inbox and outbox rows deleted per transaction: they have no objects, so large chunks are cheap."""
OBJECT_CONCURRENCY = 16
"""Job folders deleted from the blob store at once."""


def job_prefix(tenant_id: uuid.UUID, job_id: uuid.UUID) -> str:
    """The folder of a job's original and of every output its steps stored, recorded or not."""
    return f"jobs/{tenant_id}/{job_id}/"


@dataclass(frozen=True)
class ExpiredJob:
    """A job past its retention, locked for deletion."""

    tenant_id: uuid.UUID
    job_id: uuid.UUID


class RetentionRepository(Protocol):
    """Expired rows inside one transaction; what one replica locks here, the others skip."""

    async def lock_expired_jobs(self, *, created_before: datetime, limit: int) -> list[ExpiredJob]:
        """Lock up to `limit` jobs created before the cutoff, oldest first, skipping rows locked elsewhere."""
        ...

    async def delete_jobs(self, job_ids: Sequence[uuid.UUID]) -> int:
        """Delete jobs with their steps, outputs and webhook deliveries; returns how many jobs."""
        ...

    async def delete_emptied_batches(self, *, created_before: datetime, limit: int) -> int:
        """Delete up to `limit` batches created before the cutoff that have no jobs left."""
        ...

    async def delete_inbox(self, *, processed_before: datetime, limit: int) -> int:
        """Delete up to `limit` inbox rows processed before the cutoff."""
        ...

    async def delete_published_outbox(self, *, published_before: datetime, limit: int) -> int:
        """Delete up to `limit` outbox rows published before the cutoff; unpublished rows are never touched."""
        ...


RetentionTransactions = Callable[[], AbstractAsyncContextManager[RetentionRepository]]
"""Opens a repository in a new transaction that commits when the block succeeds."""


class Lease(Protocol):
    """A lease shared by the replicas, so one at a time runs the cleanup."""

    async def acquire(self) -> bool:
        """Take the lease; False while another replica holds it."""
        ...

    async def renew(self) -> bool:
        """Extend the lease; False when it was lost."""
        ...

    async def release(self) -> None:
        """Give the lease up."""
        ...


@dataclass(frozen=True)
class RetentionPolicy:
    """How long things are kept, and how many jobs one transaction deletes."""

    max_age: timedelta
    outbox_max_age: timedelta
    chunk: int = 100


@dataclass
class Deleted:
    """What one cleanup deleted."""

    jobs: int = 0
    objects: int = 0
    batches: int = 0
    inbox: int = 0
    outbox: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts by kind."""
        return asdict(self)


async def _always() -> bool:
    return True


async def clean_up(
    *,
    transactions: RetentionTransactions,
    blobs: BlobStore,
    policy: RetentionPolicy,
    now: datetime,
    keep_going: Callable[[], Awaitable[bool]] = _always,
) -> Deleted:
    """Delete expired jobs (objects first, then rows), then emptied batches, old inbox and published outbox rows.

    Every chunk is one transaction over rows locked with SKIP LOCKED, so replicas running at once never delete the
    same thing twice. `keep_going` is asked before every chunk but the first; False stops the cleanup there.
    """
    deleted = Deleted()
    cutoff = now - policy.max_age

    async def jobs_chunk(limit: int) -> int:
        async with transactions() as repository:
            jobs = await repository.lock_expired_jobs(created_before=cutoff, limit=limit)
            # Objects go first: if this fails, the rows stay and the next cleanup finds the job again.
            deleted.objects += await _delete_objects(blobs, jobs)
            return await repository.delete_jobs([job.job_id for job in jobs])

    async def batches_chunk(limit: int) -> int:
        # After the jobs: a batch's remaining jobs would go with it by cascade, leaving their objects behind.
        async with transactions() as repository:
            return await repository.delete_emptied_batches(created_before=cutoff, limit=limit)

    async def inbox_chunk(limit: int) -> int:
        async with transactions() as repository:
            return await repository.delete_inbox(processed_before=cutoff, limit=limit)

    async def outbox_chunk(limit: int) -> int:
        async with transactions() as repository:
            return await repository.delete_published_outbox(published_before=now - policy.outbox_max_age, limit=limit)

    stages: list[tuple[str, Callable[[int], Awaitable[int]], int]] = [
        ("jobs", jobs_chunk, policy.chunk),
        ("batches", batches_chunk, ROW_CHUNK),
        ("inbox", inbox_chunk, ROW_CHUNK),
        ("outbox", outbox_chunk, ROW_CHUNK),
    ]
    first = True
    for kind, delete_chunk, limit in stages:
        while True:
            if not first and not await keep_going():
                return deleted
            first = False
            count = await delete_chunk(limit)
            setattr(deleted, kind, getattr(deleted, kind) + count)
            if count < limit:
                break
    return deleted


async def _delete_objects(blobs: BlobStore, jobs: Sequence[ExpiredJob]) -> int:
    """Delete every object under each job's folder, a few folders at a time; returns how many objects."""
    limit = asyncio.Semaphore(OBJECT_CONCURRENCY)

    async def delete_folder(job: ExpiredJob) -> int:
        async with limit:
            return await blobs.delete_prefix(job_prefix(job.tenant_id, job.job_id))

    # A task group cancels the other deletions when one fails, so none outlives the rolled-back transaction.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(delete_folder(job)) for job in jobs]
    return sum(task.result() for task in tasks)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RetentionCleaner:
    """Runs `clean_up` every interval on whichever replica holds the lease; the others skip their turn."""

    def __init__(
        self,
        *,
        transactions: RetentionTransactions,
        blobs: BlobStore,
        lease: Lease,
        policy: RetentionPolicy,
        interval_s: float,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._transactions = transactions
        self._blobs = blobs
        self._lease = lease
        self._policy = policy
        self._interval_s = interval_s
        self._clock = clock
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> Deleted | None:
        """Clean up if this replica gets the lease; None when another replica holds it."""
        if not await self._lease.acquire():
            return None
        try:
            deleted = await clean_up(
                transactions=self._transactions,
                blobs=self._blobs,
                policy=self._policy,
                now=self._clock(),
                keep_going=self._keep_going,
            )
        finally:
            await self._lease.release()
        counts = deleted.as_dict()
        for kind, count in counts.items():
            metrics.RETENTION_DELETED.labels(kind).inc(count)
        log.info("retention cleanup", extra=counts)
        return deleted

    async def _keep_going(self) -> bool:
        if self._stopping.is_set():
            return False
        if not await self._lease.renew():
            log.warning("retention lease lost; leaving the rest of the cleanup to its new holder")
            return False
        return True

    def start(self) -> None:
        """Run the cleanup now and then every interval, in the background."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="retention-cleaner")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop after the chunk in hand, or cancel it after `grace_s`: a cancelled chunk rolls back and is redone."""
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace_s)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("retention cleanup failed; retrying at the next interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval_s)
