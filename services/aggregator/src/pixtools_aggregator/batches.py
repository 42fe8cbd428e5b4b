"""Batch progress: a batch runs once one of its jobs starts, and finishes, once, when its last job is terminal."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from pixtools_aggregator.ports import JobRepository
from pixtools_aggregator.webhooks import webhook_payload
from pixtools_contracts import BatchFinished, BatchTotals, FinishedBatchState
from pixtools_db import Batch, WebhookDelivery, lifecycle


@dataclass(frozen=True)
class SettledBatch:
    """A batch that settling finished, and whether its webhook was queued."""

    state: FinishedBatchState
    webhook: bool


async def start_batch_job(batch_id: uuid.UUID, *, jobs: JobRepository, now: datetime) -> None:
    """One of the batch's jobs started: the batch is running, and its listeners hear of it."""
    await jobs.start_batch(batch_id, now)
    await jobs.notify_batch(batch_id)


async def settle_batch(
    batch_id: uuid.UUID, *, jobs: JobRepository, now: datetime, traceparent: str | None
) -> SettledBatch | None:
    """One of the batch's jobs became terminal: finish the batch if none is left unfinished; None while it is open."""
    # Jobs finishing at once queue on the batch's lock. The check runs in a later statement than the lock, so in
    # READ COMMITTED it sees the jobs the transaction before this one committed: exactly one of them finishes it.
    batch = await jobs.lock_batch(batch_id)
    if batch is None:
        return None
    await jobs.notify_batch(batch.id)
    if batch.finished_at is not None or await jobs.has_unfinished_jobs(batch.id):
        return None
    totals = BatchTotals.from_counts(await jobs.count_batch_jobs(batch.id))
    state = totals.finished_state(cancelled=batch.cancelled_at is not None)
    lifecycle.finish_batch(batch, state, at=now)
    if batch.webhook_url:
        message = BatchFinished(
            batch_id=batch.id,
            tenant_id=batch.tenant_id,
            state=state,
            totals=totals,
            created_at=batch.created_at,
            finished_at=now,
        )
        jobs.add_webhook(batch_webhook(batch, message, batch.webhook_url, traceparent or batch.traceparent))
    return SettledBatch(state=state, webhook=bool(batch.webhook_url))


def batch_webhook(batch: Batch, message: BatchFinished, url: str, traceparent: str | None) -> WebhookDelivery:
    """A pending delivery of the batch's one webhook; the message id doubles as its webhook-id."""
    return WebhookDelivery(
        id=message.id,
        tenant_id=batch.tenant_id,
        job_id=None,
        batch_id=batch.id,
        url=url,
        event_type=message.type,
        payload=webhook_payload(message),
        traceparent=traceparent,
        state="pending",
        attempts=0,
    )
