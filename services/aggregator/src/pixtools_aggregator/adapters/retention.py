"""The retention repository over SQLAlchemy: expired rows are locked in chunks with FOR UPDATE SKIP LOCKED."""

import os
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_aggregator.retention import ExpiredJob
from pixtools_db import Batch, Inbox, Job, Outbox, PostgresLease

LEASE_NAME = "aggregator.retention"
LEASE_TTL = timedelta(minutes=2)
"""Renewed before every chunk; a replica that dies holding it blocks the others for this long at most."""


class SqlRetentionRepository:
    """Expired jobs, batches, inbox and outbox rows in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_expired_jobs(self, *, created_before: datetime, limit: int) -> list[ExpiredJob]:
        """Lock the oldest jobs created before the cutoff that have not finished or changed since; skip locked rows.

        A job finished (or, if it never finishes, last changed) after the cutoff is kept: one retried or still
        running loses nothing under a stage's feet.
        """
        rows = await self._session.execute(
            select(Job.tenant_id, Job.id)
            .where(Job.created_at < created_before, func.coalesce(Job.finished_at, Job.updated_at) < created_before)
            .order_by(Job.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [ExpiredJob(tenant_id=tenant_id, job_id=job_id) for tenant_id, job_id in rows]

    async def delete_jobs(self, job_ids: Sequence[uuid.UUID]) -> int:
        """Delete jobs; their steps, outputs and webhook deliveries go by cascade."""
        if not job_ids:
            return 0
        deleted = await self._session.scalars(delete(Job).where(Job.id.in_(job_ids)).returning(Job.id))
        return len(deleted.all())

    async def delete_emptied_batches(self, *, created_before: datetime, limit: int) -> int:
        """Delete old batches with no jobs left; a batch never gains jobs after it is submitted."""
        emptied = (
            select(Batch.id)
            .where(Batch.created_at < created_before, ~exists().where(Job.batch_id == Batch.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        deleted = await self._session.scalars(delete(Batch).where(Batch.id.in_(emptied)).returning(Batch.id))
        return len(deleted.all())

    async def delete_inbox(self, *, processed_before: datetime, limit: int) -> int:
        """Delete old inbox rows; a redelivery of their events finds no job and changes nothing."""
        old = (
            select(Inbox.consumer, Inbox.event_id)
            .where(Inbox.processed_at < processed_before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        deleted = await self._session.scalars(
            delete(Inbox).where(tuple_(Inbox.consumer, Inbox.event_id).in_(old)).returning(Inbox.event_id)
        )
        return len(deleted.all())

    async def delete_published_outbox(self, *, published_before: datetime, limit: int) -> int:
        """Delete outbox rows marked published before the cutoff.

        The relays delete a row once its event is confirmed and no longer mark it, so only rows that older versions
        marked come here; `ix_outbox_published` finds them, and holds no entry for any other row.
        """
        old = (
            select(Outbox.id)
            .where(Outbox.published_at < published_before)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        deleted = await self._session.scalars(delete(Outbox).where(Outbox.id.in_(old)).returning(Outbox.id))
        return len(deleted.all())


@asynccontextmanager
async def retention_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[SqlRetentionRepository]:
    """A repository in a new transaction that commits when the block succeeds and rolls back otherwise."""
    async with sessions.begin() as session:
        yield SqlRetentionRepository(session)


def retention_lease(sessions: async_sessionmaker[AsyncSession], *, ttl: timedelta = LEASE_TTL) -> PostgresLease:
    """The cleanup's lease, held under a name unique to this process."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    return PostgresLease(sessions, name=LEASE_NAME, holder=holder, ttl=ttl)
