"""The job repository over asyncpg and SQLAlchemy: one instance per transaction."""

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstanceState

from pixtools_aggregator.adapters import job_statements as sql
from pixtools_aggregator.adapters.rows import loaded, output_arrays, values_of
from pixtools_aggregator.adapters.transactions import (
    WEBHOOKS_TOPIC,
    DriverTransaction,
    SessionTransaction,
    Transaction,
)
from pixtools_aggregator.errors import OutputsConflict
from pixtools_contracts import Event, StepState
from pixtools_db import Batch, Job, Output, Step, WebhookDelivery, lifecycle

__all__ = ["WEBHOOKS_TOPIC", "SqlJobRepository", "group_transaction", "job_transaction"]


class SqlJobRepository:
    """Jobs, steps and outputs in one transaction: a session's, or a pooled asyncpg connection's (`Transaction`).

    A group of events is `prepare`d: one statement claims their inbox rows, locks their jobs and loads their steps,
    and the handlers then find them here without a round trip. Outputs are written when a job's final outputs are
    asked for, or before the commit; the changed jobs and steps and the NOTIFYs go out in one statement before the
    commit (`flush_pending`). Jobs and steps read by `prepare` belong to no session: only that statement writes them.
    """

    def __init__(self, transaction: AsyncSession | Transaction) -> None:
        self._transaction = SessionTransaction(transaction) if isinstance(transaction, AsyncSession) else transaction
        self._prepared_events: set[uuid.UUID] = set()
        self._claimed: set[uuid.UUID] = set()
        self._missing_jobs: set[uuid.UUID] = set()
        self._jobs: dict[uuid.UUID, Job] = {}
        self._steps: dict[uuid.UUID, list[Step]] = {}
        self._succeeded_before: dict[uuid.UUID, bool] = {}
        self._outputs: list[Output] = []
        self._written_outputs: dict[uuid.UUID, list[Output]] = {}
        self._outputs_conflicted: set[uuid.UUID] = set()
        self._listed_unwritten: set[uuid.UUID] = set()
        self._notified: dict[uuid.UUID, None] = {}
        self._staged_rows: list[dict[str, Any]] = []
        self._written: dict[int, tuple[Any, ...]] = {}

    async def prepare(self, events: Sequence[Event]) -> None:
        """Claim these events' inbox rows, lock the jobs of the new ones and load their steps, in one statement."""
        event_ids = [event.event_id for event in events]
        self._prepared_events.update(event_ids)
        driver = await self._transaction.driver()
        rows = await driver.fetch(sql.CLAIM_LOCK_AND_STEPS, event_ids, [event.job_id for event in events])
        # A row per claimed event and step of its job, in job and step order; a job's steps repeat for each of its
        # claimed events.
        steps: dict[uuid.UUID, dict[str, Step]] = {}
        job_end = 2 + len(sql.JOB_ATTRIBUTES)
        for row in rows:
            event_id, job_id = row[0], row[1]
            self._claimed.add(event_id)
            if row[2] is None:
                self._missing_jobs.add(job_id)
                continue
            if job_id not in self._jobs:
                self._jobs[job_id] = loaded(Job, dict(zip(sql.JOB_ATTRIBUTES, row[2:job_end], strict=True)))
            job_steps = steps.setdefault(job_id, {})
            step_values = dict(zip(sql.STEP_ATTRIBUTES, row[job_end:], strict=True))
            if step_values["step_id"] is not None and step_values["step_id"] not in job_steps:
                job_steps[step_values["step_id"]] = loaded(Step, step_values)
        for job_id, by_id in steps.items():
            self._steps[job_id] = list(by_id.values())
            # A group lists a job's final outputs from memory where it can; should that ever meet an output that
            # already existed, the group fails and its events go one at a time, where the outputs are queried.
            self._succeeded_before[job_id] = any(step.state == StepState.SUCCEEDED for step in by_id.values())

    async def claim_event(self, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when it was applied before."""
        if event_id in self._prepared_events:
            # Claimed by `prepare`: the first of any copies in the group applies, the others are duplicates.
            fresh = event_id in self._claimed
            self._claimed.discard(event_id)
            return fresh
        session = await self._transaction.session()
        inserted = await session.scalar(sql.CLAIM, {"event_id": event_id})
        return inserted is not None

    async def lock_job(self, job_id: uuid.UUID) -> Job | None:
        """The job, locked FOR UPDATE until the transaction ends."""
        if job_id in self._jobs:
            return self._jobs[job_id]
        if job_id in self._missing_jobs:
            return None
        session = await self._transaction.session()
        job = await session.scalar(sql.LOCK_JOB, {"job_id": job_id})
        if job is not None:
            self._jobs[job_id] = job
        return job

    async def steps(self, job_id: uuid.UUID) -> list[Step]:
        """The job's steps in tree order."""
        if job_id not in self._steps:
            session = await self._transaction.session()
            self._steps[job_id] = list(await session.scalars(sql.STEPS, {"job_id": job_id}))
        return self._steps[job_id]

    async def add_outputs(self, outputs: Sequence[Output]) -> None:
        """Insert outputs, keeping the first copy of any (job, step, name); written before the commit."""
        for output in outputs:
            output.id = output.id or uuid.uuid4()
        self._outputs.extend(outputs)

    async def final_outputs(self, job_id: uuid.UUID) -> list[Output]:
        """The outputs listed as the job's results, in step order."""
        if self._succeeded_before.get(job_id) is False and job_id not in self._outputs_conflicted:
            # No step of the job had succeeded before this transaction, so every output it has is in memory: a
            # step's outputs are added only when it succeeds, and a succeeded step never runs again. They are
            # written with the rest before the commit, which checks that every one of them was inserted.
            positions = {step.step_id: step.position for step in self._steps[job_id]}
            mine = [*self._written_outputs.get(job_id, []), *(out for out in self._outputs if out.job_id == job_id)]
            self._listed_unwritten.add(job_id)
            final = [output for output in mine if output.is_final]
            return sorted(final, key=lambda output: (positions[output.step_id], output.name))
        await self._write_outputs()
        # The query reads outputs and step positions, which no pending change touches: the job's and steps'
        # updates can wait for the one write before the commit instead of a flush of their own here.
        session = await self._transaction.session()
        with session.no_autoflush:
            return list(await session.scalars(sql.FINAL_OUTPUTS, {"job_id": job_id}))

    async def _write_outputs(self) -> None:
        outputs, self._outputs = self._outputs, []
        if not outputs:
            return
        rows = [{name: getattr(output, name) for name in ("id", *sql.OUTPUT_FIELDS)} for output in outputs]
        # Nothing else is flushed with them: the changed jobs and steps go out in one statement before the commit.
        session = await self._transaction.session()
        with session.no_autoflush:
            inserted = set(await session.scalars(sql.ADD_OUTPUTS, rows))
        self._check_inserted(outputs, inserted)

    def _check_inserted(self, outputs: Sequence[Output], inserted: set[uuid.UUID]) -> None:
        for output in outputs:
            if output.id in inserted:
                self._written_outputs.setdefault(output.job_id, []).append(output)
                continue
            if output.job_id in self._listed_unwritten:
                # Its final outputs were listed from memory, on the grounds that none of them could exist yet.
                raise OutputsConflict(f"job {output.job_id} already had an output {output.step_id}/{output.name}")
            # An earlier copy is kept, and it is what the job lists.
            self._outputs_conflicted.add(output.job_id)

    async def flush_pending(self) -> None:
        """Write the waiting outputs, the changed jobs and steps, and send the NOTIFYs; called before the commit."""
        outputs, self._outputs = self._outputs, []
        jobs = self._changed(self._jobs.values(), sql.JOB_STATE_COLUMNS)
        steps = self._changed((step for steps in self._steps.values() for step in steps), sql.STEP_STATE_COLUMNS)
        job_ids, self._notified = list(self._notified), {}
        event_rows, self._staged_rows = self._staged_rows, []
        if not (jobs or steps or job_ids or event_rows or outputs):
            return
        parameters = {
            "job_ids": [job.id for job in jobs],
            "job_states": [job.state for job in jobs],
            "job_started": [job.started_at for job in jobs],
            "job_finished": [job.finished_at for job in jobs],
            "job_updated": [job.updated_at for job in jobs],
            "job_codes": [job.error_code for job in jobs],
            "job_messages": [job.error_message for job in jobs],
            "step_jobs": [step.job_id for step in steps],
            "step_ids": [step.step_id for step in steps],
            "step_states": [step.state for step in steps],
            "step_started": [step.started_at for step in steps],
            "step_finished": [step.finished_at for step in steps],
            "step_codes": [step.error_code for step in steps],
            "step_messages": [step.error_message for step in steps],
            "step_results": [None if step.result is None else json.dumps(step.result) for step in steps],
            "event_ids": [row["event_id"] for row in event_rows],
            "event_types": [row["event_type"] for row in event_rows],
            "routing_keys": [row["routing_key"] for row in event_rows],
            "bodies": [row["body"] for row in event_rows],
            "headers": [json.dumps(row["headers"]) for row in event_rows],
            "notify": [str(job_id) for job_id in job_ids],
            **output_arrays(outputs),
        }
        # Straight on the session's asyncpg connection, in its transaction; see `sql.WRITE_STATE`.
        driver = await self._transaction.driver()
        written = await driver.fetchrow(sql.WRITE_STATE, *(parameters[name] for name in sql.WRITE_STATE_PARAMETERS))
        self._check_inserted(outputs, set(written["written_outputs"]))
        # Written: neither a later call nor a session's flush at commit may write them again.
        for row, columns in (
            *((job, sql.JOB_STATE_COLUMNS) for job in jobs),
            *((s, sql.STEP_STATE_COLUMNS) for s in steps),
        ):
            self._written[id(row)] = values_of(row, columns)
            state: InstanceState[Any] = inspect(row)
            if state.session is not None:
                state.session.expunge(row)

    def _changed(self, rows: Iterable[Job | Step], columns: tuple[str, ...]) -> list[Any]:
        """The rows among these with changes not yet written, all of them to the given columns."""
        changed = []
        for row in rows:
            state: InstanceState[Any] = inspect(row)
            if not state.modified or self._written.get(id(row)) == values_of(row, columns):
                continue
            if set(state.committed_state) <= set(columns):
                changed.append(row)
            elif state.session is None:
                # Only the write statement would save it, and it writes only these columns: refuse to lose a change.
                raise RuntimeError(f"{row!r} changed outside {columns}; no statement writes that")
        return changed

    def stage(self, event: Event) -> None:
        """Put an event in the outbox: its row is written before the commit, and the relay publishes it after."""
        self._staged_rows.extend(self._transaction.stage_rows([event]))

    def add_webhook(self, delivery: WebhookDelivery) -> None:
        """Queue a webhook delivery with the transaction; the dispatcher hears of it when it commits."""
        self._transaction.add_webhook(delivery)

    async def notify(self, job_id: uuid.UUID) -> None:
        """NOTIFY the jobs channel before the commit; Postgres delivers it only if the transaction commits."""
        self._notified[job_id] = None

    async def lock_batch(self, batch_id: uuid.UUID) -> Batch | None:
        """The batch, locked FOR NO KEY UPDATE; a waiter gets the row as the transaction before it committed it."""
        session = await self._transaction.session()
        return await session.scalar(sql.LOCK_BATCH, {"batch_id": batch_id})

    async def start_batch(self, batch_id: uuid.UUID, now: datetime) -> None:
        """Move the batch from 'accepted' to 'running'; a batch in any other state is not even locked."""
        await lifecycle.start_batch(await self._transaction.session(), batch_id, at=now)

    async def has_unfinished_jobs(self, batch_id: uuid.UUID) -> bool:
        """True while any job of the batch is not terminal."""
        # This transaction's own job changes must be in the rows the query reads.
        await self.flush_pending()
        session = await self._transaction.session()
        return bool(await session.scalar(sql.UNFINISHED_JOBS, {"batch_id": batch_id}))

    async def count_batch_jobs(self, batch_id: uuid.UUID) -> dict[str, int]:
        """The batch's jobs counted by state, in one GROUP BY."""
        await self.flush_pending()
        session = await self._transaction.session()
        rows = await session.execute(sql.COUNT_BATCH_JOBS, {"batch_id": batch_id})
        return {state: count for state, count in rows}

    async def notify_batch(self, batch_id: uuid.UUID) -> None:
        """NOTIFY the batches channel; Postgres delivers it only if the transaction commits."""
        session = await self._transaction.session()
        await session.execute(sql.NOTIFY_BATCH, {"batch_id": str(batch_id)})


@asynccontextmanager
async def job_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[SqlJobRepository]:
    """A repository in a new session's transaction that commits when the block succeeds and rolls back otherwise."""
    async with sessions.begin() as session:
        repository = SqlJobRepository(session)
        yield repository
        await repository.flush_pending()


@asynccontextmanager
async def group_transaction(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[SqlJobRepository]:
    """A repository in a transaction on a pooled asyncpg connection, for a group of step events; as `job_transaction`.

    The COMMIT comes after `flush_pending`, and the staged events go to the relay after the COMMIT, as with a session.
    """
    transaction = DriverTransaction(engine, sessions)
    try:
        await transaction.begin()
        repository = SqlJobRepository(transaction)
        yield repository
        await repository.flush_pending()
        await transaction.commit()
        transaction.hand_over()
    except BaseException:
        await transaction.rollback()
        raise
    finally:
        await transaction.close()
