"""The job repository over SQLAlchemy: one instance per transaction."""

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstanceState, make_transient_to_detached

from pixtools_aggregator.adapters import job_statements as sql
from pixtools_aggregator.errors import OutputsConflict
from pixtools_contracts import Event, StepState
from pixtools_db import Batch, Job, Output, Step, WebhookDelivery, lifecycle
from pixtools_db.commits import defer
from pixtools_db.outbox import stage_event_rows

_Row = TypeVar("_Row", Job, Step)

WEBHOOKS_TOPIC = "webhooks"
"""The commit-hook topic of queued webhook deliveries: the dispatcher is woken when they commit."""


class SqlJobRepository:
    """Jobs, steps and outputs in the session's transaction.

    A group of events is `prepare`d: one statement claims their inbox rows and locks their jobs, one loads the
    jobs' steps, and the handlers then find them here without a round trip. Outputs are written when a job's
    final outputs are asked for, or before the commit; the changed jobs and steps and the NOTIFYs go out in one
    statement before the commit (`flush_pending`).
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
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

    async def prepare(self, events: Sequence[Event]) -> None:
        """Claim these events' inbox rows, lock the jobs of the new ones and load their steps, in one statement."""
        event_ids = [event.event_id for event in events]
        self._prepared_events.update(event_ids)
        driver = await _driver_connection(self._session)
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
                self._jobs[job_id] = self._attach(Job(**dict(zip(sql.JOB_ATTRIBUTES, row[2:job_end], strict=True))))
            job_steps = steps.setdefault(job_id, {})
            step_values = dict(zip(sql.STEP_ATTRIBUTES, row[job_end:], strict=True))
            if step_values["step_id"] is not None and step_values["step_id"] not in job_steps:
                job_steps[step_values["step_id"]] = self._attach(Step(**step_values))
        for job_id, by_id in steps.items():
            self._steps[job_id] = list(by_id.values())
            # A group lists a job's final outputs from memory where it can; should that ever meet an output that
            # already existed, the group fails and its events go one at a time, where the outputs are queried.
            self._succeeded_before[job_id] = any(step.state == StepState.SUCCEEDED for step in by_id.values())

    def _attach(self, row: _Row) -> _Row:
        """Put a row read outside the ORM into the session as loaded (persistent, no changes), as a query would."""
        make_transient_to_detached(row)
        self._session.add(row)
        return row

    async def claim_event(self, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when it was applied before."""
        if event_id in self._prepared_events:
            # Claimed by `prepare`: the first of any copies in the group applies, the others are duplicates.
            fresh = event_id in self._claimed
            self._claimed.discard(event_id)
            return fresh
        inserted = await self._session.scalar(sql.CLAIM, {"event_id": event_id})
        return inserted is not None

    async def lock_job(self, job_id: uuid.UUID) -> Job | None:
        """The job, locked FOR UPDATE until the transaction ends."""
        if job_id in self._jobs:
            return self._jobs[job_id]
        if job_id in self._missing_jobs:
            return None
        job = await self._session.scalar(sql.LOCK_JOB, {"job_id": job_id})
        if job is not None:
            self._jobs[job_id] = job
        return job

    async def steps(self, job_id: uuid.UUID) -> list[Step]:
        """The job's steps in tree order."""
        if job_id not in self._steps:
            self._steps[job_id] = list(await self._session.scalars(sql.STEPS, {"job_id": job_id}))
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
        with self._session.no_autoflush:
            return list(await self._session.scalars(sql.FINAL_OUTPUTS, {"job_id": job_id}))

    async def _write_outputs(self) -> None:
        outputs, self._outputs = self._outputs, []
        if not outputs:
            return
        rows = [{name: getattr(output, name) for name in ("id", *sql.OUTPUT_FIELDS)} for output in outputs]
        # Nothing else is flushed with them: the changed jobs and steps go out in one statement before the commit.
        with self._session.no_autoflush:
            inserted = set(await self._session.scalars(sql.ADD_OUTPUTS, rows))
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
        jobs = _changed(self._jobs.values(), sql.JOB_STATE_COLUMNS)
        steps = _changed((step for steps in self._steps.values() for step in steps), sql.STEP_STATE_COLUMNS)
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
            **_output_arrays(outputs),
        }
        # Straight on the session's asyncpg connection, in its transaction; see `sql.WRITE_STATE`.
        driver = await _driver_connection(self._session)
        written = await driver.fetchrow(sql.WRITE_STATE, *(parameters[name] for name in sql.WRITE_STATE_PARAMETERS))
        self._check_inserted(outputs, set(written["written_outputs"]))
        # Written: the session's flush at commit must not write them again.
        for row in (*jobs, *steps):
            self._session.expunge(row)

    def stage(self, event: Event) -> None:
        """Put an event in the outbox: its row is written before the commit, and the relay publishes it after."""
        self._staged_rows.extend(stage_event_rows(self._session, [event]))

    def add_webhook(self, delivery: WebhookDelivery) -> None:
        """Queue a webhook delivery with the transaction; the dispatcher hears of it when it commits."""
        self._session.add(delivery)
        defer(self._session, WEBHOOKS_TOPIC, [delivery])

    async def notify(self, job_id: uuid.UUID) -> None:
        """NOTIFY the jobs channel before the commit; Postgres delivers it only if the transaction commits."""
        self._notified[job_id] = None

    async def lock_batch(self, batch_id: uuid.UUID) -> Batch | None:
        """The batch, locked FOR NO KEY UPDATE; a waiter gets the row as the transaction before it committed it."""
        return await self._session.scalar(sql.LOCK_BATCH, {"batch_id": batch_id})

    async def start_batch(self, batch_id: uuid.UUID, now: datetime) -> None:
        """Move the batch from 'accepted' to 'running'; a batch in any other state is not even locked."""
        await lifecycle.start_batch(self._session, batch_id, at=now)

    async def has_unfinished_jobs(self, batch_id: uuid.UUID) -> bool:
        """True while any job of the batch is not terminal."""
        # This transaction's own job changes must be in the rows the query reads.
        await self._session.flush()
        return bool(await self._session.scalar(sql.UNFINISHED_JOBS, {"batch_id": batch_id}))

    async def count_batch_jobs(self, batch_id: uuid.UUID) -> dict[str, int]:
        """The batch's jobs counted by state, in one GROUP BY."""
        await self._session.flush()
        rows = await self._session.execute(sql.COUNT_BATCH_JOBS, {"batch_id": batch_id})
        return {state: count for state, count in rows}

    async def notify_batch(self, batch_id: uuid.UUID) -> None:
        """NOTIFY the batches channel; Postgres delivers it only if the transaction commits."""
        await self._session.execute(sql.NOTIFY_BATCH, {"batch_id": str(batch_id)})


async def _driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapted: Any = raw.dbapi_connection
    driver = raw.driver_connection
    # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it executes itself: a statement sent
    # straight to the driver before that would run, and commit, on its own. Its private names are checked here, so
    # that an upgrade that renames them fails loudly instead.
    if driver is None or not hasattr(adapted, "_transaction") or not hasattr(adapted, "_start_transaction"):
        raise RuntimeError("cannot reach the transaction of the session's asyncpg connection")
    if adapted._transaction is None:
        await adapted._start_transaction()
    return driver


def _output_arrays(outputs: Sequence[Output]) -> dict[str, list[Any]]:
    arrays = {
        "output_ids": "id",
        "output_jobs": "job_id",
        "output_steps": "step_id",
        "output_ops": "op",
        "output_names": "name",
        "output_roles": "role",
        "output_finals": "is_final",
        "output_keys": "key",
        "output_types": "content_type",
        "output_bytes": "bytes",
        "output_sha256s": "sha256",
        "output_widths": "width",
        "output_heights": "height",
    }
    return {parameter: [getattr(output, name) for output in outputs] for parameter, name in arrays.items()}


def _changed(rows: Iterable[Job | Step], columns: tuple[str, ...]) -> list[Any]:
    """The rows among these with unsaved changes, all of them to the given columns."""
    changed = []
    for row in rows:
        state: InstanceState[Any] = inspect(row)
        if state.session_id is not None and state.modified and set(state.committed_state) <= set(columns):
            changed.append(row)
    return changed


@asynccontextmanager
async def job_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[SqlJobRepository]:
    """A repository in a new transaction that commits when the block succeeds and rolls back otherwise."""
    async with sessions.begin() as session:
        repository = SqlJobRepository(session)
        yield repository
        await repository.flush_pending()
