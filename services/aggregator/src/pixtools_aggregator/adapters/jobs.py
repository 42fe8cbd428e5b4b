"""The job repository over SQLAlchemy: one instance per transaction."""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, any_, bindparam, exists, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_contracts import JOB_UNFINISHED, Event
from pixtools_db import Batch, Inbox, Job, Output, Step, WebhookDelivery, lifecycle
from pixtools_db.commits import defer
from pixtools_db.outbox import add_events

CONSUMER = "aggregator"
JOBS_CHANNEL = "pixtools_jobs"
"""The Postgres NOTIFY channel the gateway's event stream listens on; the payload is the job id."""
WEBHOOKS_TOPIC = "webhooks"
"""The commit-hook topic of queued webhook deliveries: the dispatcher is woken when they commit."""
BATCHES_CHANNEL = "pixtools_batches"
"""The NOTIFY channel of batch progress: a batch's job changed state, or the batch finished; the payload is its id."""

_OUTPUT_FIELDS = (
    "job_id",
    "step_id",
    "op",
    "name",
    "role",
    "is_final",
    "key",
    "content_type",
    "bytes",
    "sha256",
    "width",
    "height",
)


# Statements are built once: constructing and cache-keying them per event costs more than running them.
_CLAIM = (
    insert(Inbox)
    .values(consumer=CONSUMER, event_id=bindparam("event_id"))
    .on_conflict_do_nothing(index_elements=[Inbox.consumer, Inbox.event_id])
    .returning(Inbox.event_id)
)
_LOCK_JOB = select(Job).where(Job.id == bindparam("job_id")).with_for_update()
_STEPS = select(Step).where(Step.job_id == bindparam("job_id")).order_by(Step.position)
# A group's statements take arrays, so one prepared statement serves every group size.
_INBOX = cast(Table, Inbox.__table__)
# On the table, not the mapped class: the ORM would take an INSERT ... SELECT with parameters for a bulk insert.
_CLAIM_GROUP = (
    insert(_INBOX)
    .from_select(
        [_INBOX.c.consumer, _INBOX.c.event_id],
        select(literal(CONSUMER), func.unnest(bindparam("event_ids", type_=ARRAY(UUID(as_uuid=True))))),
    )
    .on_conflict_do_nothing(index_elements=[_INBOX.c.consumer, _INBOX.c.event_id])
    .returning(_INBOX.c.event_id)
)
# Locked in id order, so two transactions that lock some of the same jobs cannot each wait for the other.
_LOCK_GROUP_JOBS = (
    select(Job)
    .where(Job.id == any_(bindparam("job_ids", type_=ARRAY(UUID(as_uuid=True)))))
    .order_by(Job.id)
    .with_for_update()
)
_GROUP_STEPS = (
    select(Step)
    .where(Step.job_id == any_(bindparam("job_ids", type_=ARRAY(UUID(as_uuid=True)))))
    .order_by(Step.job_id, Step.position)
)
# On the table: the ORM's bulk insert path would first flush the session (the job's and steps' updates), a second
# flush before the one at commit, and spends more on its own bookkeeping than on the statement.
_ADD_OUTPUTS = insert(cast(Table, Output.__table__)).on_conflict_do_nothing(constraint="uq_outputs_job_step_name")
_FINAL_OUTPUTS = (
    select(Output)
    .join(Step, (Step.job_id == Output.job_id) & (Step.step_id == Output.step_id))
    .where(Output.job_id == bindparam("job_id"), Output.is_final.is_(True))
    .order_by(Step.position, Output.name)
)
# One NOTIFY per changed job (the payload stays the job id), all sent with one statement before the commit.
_NOTIFY_JOBS = text(f"SELECT pg_notify('{JOBS_CHANNEL}', job_id) FROM unnest(CAST(:job_ids AS text[])) AS job_id")
# FOR NO KEY UPDATE, not FOR UPDATE: a transaction that updates its job twice holds FOR KEY SHARE on the batch
# (the foreign key check), and two of those upgrading to FOR UPDATE would deadlock. NO KEY UPDATE still
# excludes itself, which is all settling needs.
_LOCK_BATCH = (
    select(Batch)
    .where(Batch.id == bindparam("batch_id"))
    .with_for_update(key_share=True)
    .execution_options(populate_existing=True)
)
# IN over the unfinished states, not NOT IN over the terminal ones, so ix_jobs_batch_state answers it.
_UNFINISHED_JOBS = select(exists().where(Job.batch_id == bindparam("batch_id"), Job.state.in_(JOB_UNFINISHED)))
_COUNT_BATCH_JOBS = select(Job.state, func.count()).where(Job.batch_id == bindparam("batch_id")).group_by(Job.state)
_NOTIFY_BATCH = select(func.pg_notify(BATCHES_CHANNEL, bindparam("batch_id", type_=String)))


class SqlJobRepository:
    """Jobs, steps and outputs in the session's transaction.

    Outputs and NOTIFYs wait in memory and go out in one statement each, before the commit (`flush_pending`).
    A group of events is `prepare`d: their inbox rows, job locks and steps take one statement each for the
    whole group, and the handlers then find them here without a round trip.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._prepared_events: set[uuid.UUID] = set()
        self._claimed: set[uuid.UUID] = set()
        self._jobs: dict[uuid.UUID, Job] = {}
        self._steps: dict[uuid.UUID, list[Step]] = {}
        self._outputs: list[dict[str, object]] = []
        self._notified: dict[uuid.UUID, None] = {}

    async def prepare(self, events: Sequence[Event]) -> None:
        """Claim the inbox rows of these events, lock the jobs of the new ones and load their steps."""
        event_ids = [event.event_id for event in events]
        claimed = set(await self._session.scalars(_CLAIM_GROUP, {"event_ids": event_ids}))
        self._prepared_events.update(event_ids)
        self._claimed.update(claimed)
        job_ids = sorted({event.job_id for event in events if event.event_id in claimed})
        if not job_ids:
            return
        jobs = list(await self._session.scalars(_LOCK_GROUP_JOBS, {"job_ids": job_ids}))
        self._jobs.update((job.id, job) for job in jobs)
        for job in jobs:
            self._steps[job.id] = []
        for step in await self._session.scalars(_GROUP_STEPS, {"job_ids": [job.id for job in jobs]}):
            self._steps[step.job_id].append(step)

    async def claim_event(self, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when it was applied before."""
        if event_id in self._prepared_events:
            # Claimed by `prepare`: the first of any copies in the group applies, the others are duplicates.
            fresh = event_id in self._claimed
            self._claimed.discard(event_id)
            return fresh
        inserted = await self._session.scalar(_CLAIM, {"event_id": event_id})
        return inserted is not None

    async def lock_job(self, job_id: uuid.UUID) -> Job | None:
        """The job, locked FOR UPDATE until the transaction ends."""
        if job_id in self._jobs:
            return self._jobs[job_id]
        return await self._session.scalar(_LOCK_JOB, {"job_id": job_id})

    async def steps(self, job_id: uuid.UUID) -> list[Step]:
        """The job's steps in tree order."""
        if job_id in self._steps:
            return self._steps[job_id]
        return list(await self._session.scalars(_STEPS, {"job_id": job_id}))

    async def add_outputs(self, outputs: Sequence[Output]) -> None:
        """Insert outputs, keeping the first copy of any (job, step, name); written before the commit."""
        self._outputs.extend(
            {"id": uuid.uuid4(), **{name: getattr(output, name) for name in _OUTPUT_FIELDS}} for output in outputs
        )

    async def final_outputs(self, job_id: uuid.UUID) -> list[Output]:
        """The outputs listed as the job's results, in step order."""
        await self._write_outputs()
        # The query reads outputs and step positions, which no pending change touches: the job's and steps'
        # updates can wait for the one flush at commit instead of a flush of their own here.
        with self._session.no_autoflush:
            return list(await self._session.scalars(_FINAL_OUTPUTS, {"job_id": job_id}))

    async def _write_outputs(self) -> None:
        rows, self._outputs = self._outputs, []
        if rows:
            await self._session.execute(_ADD_OUTPUTS, rows)

    async def flush_pending(self) -> None:
        """Write the waiting outputs and send the waiting NOTIFYs; called once, before the commit."""
        await self._write_outputs()
        job_ids, self._notified = list(self._notified), {}
        if job_ids:
            await self._session.execute(_NOTIFY_JOBS, {"job_ids": [str(job_id) for job_id in job_ids]})

    def stage(self, event: Event) -> None:
        """Put an event in the outbox."""
        add_events(self._session, [event])

    def add_webhook(self, delivery: WebhookDelivery) -> None:
        """Queue a webhook delivery with the transaction; the dispatcher hears of it when it commits."""
        self._session.add(delivery)
        defer(self._session, WEBHOOKS_TOPIC, [delivery])

    async def notify(self, job_id: uuid.UUID) -> None:
        """NOTIFY the jobs channel before the commit; Postgres delivers it only if the transaction commits."""
        self._notified[job_id] = None

    async def lock_batch(self, batch_id: uuid.UUID) -> Batch | None:
        """The batch, locked FOR NO KEY UPDATE; a waiter gets the row as the transaction before it committed it."""
        return await self._session.scalar(_LOCK_BATCH, {"batch_id": batch_id})

    async def start_batch(self, batch_id: uuid.UUID, now: datetime) -> None:
        """Move the batch from 'accepted' to 'running'; a batch in any other state is not even locked."""
        await lifecycle.start_batch(self._session, batch_id, at=now)

    async def has_unfinished_jobs(self, batch_id: uuid.UUID) -> bool:
        """True while any job of the batch is not terminal."""
        # This transaction's own job changes must be in the rows the query reads.
        await self._session.flush()
        return bool(await self._session.scalar(_UNFINISHED_JOBS, {"batch_id": batch_id}))

    async def count_batch_jobs(self, batch_id: uuid.UUID) -> dict[str, int]:
        """The batch's jobs counted by state, in one GROUP BY."""
        await self._session.flush()
        rows = await self._session.execute(_COUNT_BATCH_JOBS, {"batch_id": batch_id})
        return {state: count for state, count in rows}

    async def notify_batch(self, batch_id: uuid.UUID) -> None:
        """NOTIFY the batches channel; Postgres delivers it only if the transaction commits."""
        await self._session.execute(_NOTIFY_BATCH, {"batch_id": str(batch_id)})


@asynccontextmanager
async def job_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[SqlJobRepository]:
    """A repository in a new transaction that commits when the block succeeds and rolls back otherwise."""
    async with sessions.begin() as session:
        repository = SqlJobRepository(session)
        yield repository
        await repository.flush_pending()
