"""The job repository over SQLAlchemy: one instance per transaction."""

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, any_, bindparam, column, exists, func, inspect, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstanceState

from pixtools_aggregator.errors import OutputsConflict
from pixtools_contracts import JOB_UNFINISHED, Event, StepState
from pixtools_db import Batch, Inbox, Job, Output, Step, WebhookDelivery, lifecycle
from pixtools_db.commits import defer
from pixtools_db.outbox import OUTBOX_TOPIC, outbox_rows

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
_JOBS = cast(Table, Job.__table__)
_CLAIMED_EVENT = column("claimed_event_id", UUID(as_uuid=True))
_CLAIMED_JOB = column("claimed_job_id", UUID(as_uuid=True))
# One round trip claims the group's inbox rows and locks the jobs of the claimed events, in id order (so two
# transactions that lock some of the same jobs cannot each wait for the other). It returns one row per claimed
# event with its job, or with NULLs where the job does not exist: an event that is not returned was a duplicate.
# The jobs come back as they are once locked (a waiter gets the row its predecessor committed); their steps are
# read by the next statement, whose snapshot is taken after the lock, so they are as fresh as the job.
_CLAIM_AND_LOCK = (
    text(
        f"""WITH pairs AS (
    SELECT * FROM unnest(CAST(:event_ids AS uuid[]), CAST(:job_ids AS uuid[])) AS pairs(event_id, job_id)
), claimed AS (
    INSERT INTO inbox (consumer, event_id) SELECT '{CONSUMER}', event_id FROM pairs
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING event_id
), locked AS MATERIALIZED (
    SELECT * FROM jobs WHERE id IN (SELECT job_id FROM pairs JOIN claimed USING (event_id))
    ORDER BY id
    FOR UPDATE
)
SELECT pairs.event_id AS claimed_event_id, pairs.job_id AS claimed_job_id,
    {", ".join(f"locked.{job_column.name}" for job_column in _JOBS.c)}
FROM claimed JOIN pairs USING (event_id) LEFT JOIN locked ON locked.id = pairs.job_id"""
    )
    .columns(_CLAIMED_EVENT, _CLAIMED_JOB, *_JOBS.c)
    .bindparams(
        bindparam("event_ids", type_=ARRAY(UUID(as_uuid=True))), bindparam("job_ids", type_=ARRAY(UUID(as_uuid=True)))
    )
)
_CLAIM_AND_LOCK_JOBS = select(Job, _CLAIMED_EVENT, _CLAIMED_JOB).from_statement(_CLAIM_AND_LOCK)
_GROUP_STEPS = (
    select(Step)
    .where(Step.job_id == any_(bindparam("job_ids", type_=ARRAY(UUID(as_uuid=True)))))
    .order_by(Step.job_id, Step.position)
)
# On the table: the ORM's bulk insert path would first flush the session (the job's and steps' updates), a second
# flush before the one at commit, and spends more on its own bookkeeping than on the statement.
_OUTPUTS = cast(Table, Output.__table__)
_ADD_OUTPUTS = insert(_OUTPUTS).on_conflict_do_nothing(constraint="uq_outputs_job_step_name").returning(_OUTPUTS.c.id)
_FINAL_OUTPUTS = (
    select(Output)
    .join(Step, (Step.job_id == Output.job_id) & (Step.step_id == Output.step_id))
    .where(Output.job_id == bindparam("job_id"), Output.is_final.is_(True))
    .order_by(Step.position, Output.name)
)
# What the state machine changes on a job and on a step. Changed jobs and steps are written by one statement for
# the whole transaction, with every one of these columns from the row in hand (the job is locked, so nothing else
# changed them since it was read); a row with any other change is left to the session's flush.
_JOB_STATE_COLUMNS = ("state", "started_at", "finished_at", "updated_at", "error_code", "error_message")
_STEP_STATE_COLUMNS = ("state", "started_at", "finished_at", "error_code", "error_message", "result")
# The changed jobs and steps, the staged events' outbox rows (as `pixtools_db.outbox.add_events` writes them), the
# waiting outputs (keeping the first copy of any), and one NOTIFY per changed job (the payload stays the job id), in
# one statement before the commit; the arrays may be empty. It returns the ids of the outputs it inserted. The step
# results travel as JSON text, and None as SQL NULL, as the session's flush writes it.
_WRITE_STATE = text(
    f"""WITH written_jobs AS (
    UPDATE jobs SET state = v.state, started_at = v.started_at, finished_at = v.finished_at,
        updated_at = v.updated_at, error_code = v.error_code, error_message = v.error_message
    FROM unnest(
        CAST(:job_ids AS uuid[]), CAST(:job_states AS text[]), CAST(:job_started AS timestamptz[]),
        CAST(:job_finished AS timestamptz[]), CAST(:job_updated AS timestamptz[]), CAST(:job_codes AS text[]),
        CAST(:job_messages AS text[])
    ) AS v(id, state, started_at, finished_at, updated_at, error_code, error_message)
    WHERE jobs.id = v.id
), written_steps AS (
    UPDATE steps SET state = v.state, started_at = v.started_at, finished_at = v.finished_at,
        error_code = v.error_code, error_message = v.error_message, result = CAST(v.result AS jsonb)
    FROM unnest(
        CAST(:step_jobs AS uuid[]), CAST(:step_ids AS text[]), CAST(:step_states AS text[]),
        CAST(:step_started AS timestamptz[]), CAST(:step_finished AS timestamptz[]), CAST(:step_codes AS text[]),
        CAST(:step_messages AS text[]), CAST(:step_results AS text[])
    ) AS v(job_id, step_id, state, started_at, finished_at, error_code, error_message, result)
    WHERE steps.job_id = v.job_id AND steps.step_id = v.step_id
), staged_events AS (
    INSERT INTO outbox (event_id, event_type, routing_key, body, headers)
    SELECT event_id, event_type, routing_key, body, CAST(headers AS jsonb)
    FROM unnest(
        CAST(:event_ids AS uuid[]), CAST(:event_types AS text[]), CAST(:routing_keys AS text[]),
        CAST(:bodies AS bytea[]), CAST(:headers AS text[])
    ) AS v(event_id, event_type, routing_key, body, headers)
), written_outputs AS (
    INSERT INTO outputs (id, job_id, step_id, op, name, role, is_final, key, content_type, bytes, sha256, width,
        height)
    SELECT * FROM unnest(
        CAST(:output_ids AS uuid[]), CAST(:output_jobs AS uuid[]), CAST(:output_steps AS text[]),
        CAST(:output_ops AS text[]), CAST(:output_names AS text[]), CAST(:output_roles AS text[]),
        CAST(:output_finals AS boolean[]), CAST(:output_keys AS text[]), CAST(:output_types AS text[]),
        CAST(:output_bytes AS bigint[]), CAST(:output_sha256s AS text[]), CAST(:output_widths AS integer[]),
        CAST(:output_heights AS integer[])
    )
    ON CONFLICT ON CONSTRAINT uq_outputs_job_step_name DO NOTHING
    RETURNING id
), notified AS (
    SELECT pg_notify('{JOBS_CHANNEL}', job_id) FROM unnest(CAST(:notify AS text[])) AS job_id
)
SELECT (SELECT count(*) FROM notified) AS notified, ARRAY(SELECT id FROM written_outputs) AS written_outputs"""
).bindparams(
    bindparam("job_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("step_jobs", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("event_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("output_ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("output_jobs", type_=ARRAY(UUID(as_uuid=True))),
)
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
        self._staged: list[Event] = []

    async def prepare(self, events: Sequence[Event]) -> None:
        """Claim the inbox rows of these events, lock the jobs of the new ones and load their steps."""
        event_ids = [event.event_id for event in events]
        self._prepared_events.update(event_ids)
        rows = await self._session.execute(
            _CLAIM_AND_LOCK_JOBS, {"event_ids": event_ids, "job_ids": [event.job_id for event in events]}
        )
        jobs: dict[uuid.UUID, Job] = {}
        for job, event_id, job_id in rows:
            self._claimed.add(event_id)
            if job is None:
                self._missing_jobs.add(job_id)
            else:
                jobs[job.id] = job
        if jobs:
            self._jobs.update(jobs)
            await self._load_steps(list(jobs))
            # A group lists a job's final outputs from memory where it can; should that ever meet an output that
            # already existed, the group fails and its events go one at a time, where the outputs are queried.
            for job_id in jobs:
                steps = self._steps[job_id]
                self._succeeded_before[job_id] = any(step.state == StepState.SUCCEEDED for step in steps)

    async def _load_steps(self, job_ids: list[uuid.UUID]) -> None:
        for job_id in job_ids:
            self._steps[job_id] = []
        for step in await self._session.scalars(_GROUP_STEPS, {"job_ids": job_ids}):
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
        if job_id in self._missing_jobs:
            return None
        job = await self._session.scalar(_LOCK_JOB, {"job_id": job_id})
        if job is not None:
            self._jobs[job_id] = job
        return job

    async def steps(self, job_id: uuid.UUID) -> list[Step]:
        """The job's steps in tree order."""
        if job_id not in self._steps:
            await self._load_steps([job_id])
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
            return list(await self._session.scalars(_FINAL_OUTPUTS, {"job_id": job_id}))

    async def _write_outputs(self) -> None:
        outputs, self._outputs = self._outputs, []
        if not outputs:
            return
        rows = [{name: getattr(output, name) for name in ("id", *_OUTPUT_FIELDS)} for output in outputs]
        # Nothing else is flushed with them: the changed jobs and steps go out in one statement before the commit.
        with self._session.no_autoflush:
            inserted = set(await self._session.scalars(_ADD_OUTPUTS, rows))
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
        jobs = _changed(self._jobs.values(), _JOB_STATE_COLUMNS)
        steps = _changed((step for steps in self._steps.values() for step in steps), _STEP_STATE_COLUMNS)
        job_ids, self._notified = list(self._notified), {}
        events, self._staged = self._staged, []
        event_rows = outbox_rows(events)
        if not (jobs or steps or job_ids or events or outputs):
            return
        with self._session.no_autoflush:
            written = await self._session.execute(
                _WRITE_STATE,
                {
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
                },
            )
        self._check_inserted(outputs, set(written.one().written_outputs))
        # Written: the session's flush at commit must not write them again.
        for row in (*jobs, *steps):
            self._session.expunge(row)

    def stage(self, event: Event) -> None:
        """Put an event in the outbox: its row is written before the commit, and the relay publishes it after."""
        defer(self._session, OUTBOX_TOPIC, [event])
        self._staged.append(event)

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
