"""Job submission: one statement writes the job, its steps and the outbox rows that start it."""

import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import BindParameter, Dialect, FromClause, TextClause, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

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
from pixtools_db import Job, Outbox, Step
from pixtools_db.encoded_events import EncodedEvent
from pixtools_db.outbox import OUTBOX_COLUMNS, add_events, encode_events, events_committed
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

    @functools.cached_property
    def sha256(self) -> str:
        """The hex SHA-256 of the bytes, worked out once: the request's fingerprint and the stored original use it."""
        return hashlib.sha256(self.data).hexdigest()


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

    @functools.cached_property
    def pipeline_json(self) -> dict[str, Any] | list[Any]:
        """The pipeline as JSON values, dumped once: the fingerprint and the job's row both use it."""
        dumped: dict[str, Any] | list[Any] = self.pipeline.model_dump(mode="json")
        return dumped


@dataclass(frozen=True)
class BatchPlace:
    """Where a job sits in a batch: the batch, its position and the client's item id."""

    batch_id: uuid.UUID
    position: int
    item_id: str | None


def request_fingerprint(submission: Submission) -> str:
    """A hash of what makes two requests 'the same' for idempotency: source, pipeline and webhook."""
    canonical = {
        "file": submission.upload.sha256 if submission.upload else None,
        "source_url": submission.source_url,
        "pipeline": submission.pipeline_json,
        "webhook_url": submission.webhook_url,
    }
    if submission.source_url is None:
        del canonical["source_url"]  # keeps the fingerprints of upload jobs stored before URL import existed
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What the answer to a submission needs of its job, whether written now or found for a replay."""

    id: uuid.UUID
    state: JobState
    step_count: int
    correlation_id: str

    @classmethod
    def of(cls, job: Job) -> "JobSummary":
        """The summary of a stored job."""
        return cls(job.id, JobState(job.state), job.step_count, job.correlation_id)


@dataclass(frozen=True)
class Submitted:
    """The job, and whether this request created it (False for a replay of an idempotency key)."""

    job: JobSummary
    created: bool


async def submit_job(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    submission: Submission,
    *,
    writer: AsyncEngine,
    admit: Callable[[], Awaitable[None]],
) -> Submitted:
    """Store the original (for an upload), then commit job, steps and outbox together.

    `writer` is an autocommit engine of the database `sessions` use; the relay watching `sessions` publishes the
    events once the job's statement has committed. `admit` (the unfinished-jobs quota) runs only for a new job: a
    replay answers with its first job even when the tenant is at its quota, since it adds nothing.
    """
    fingerprint = request_fingerprint(submission)
    if submission.idempotency_key:
        async with sessions() as session:
            existing = await _existing(session, submission, fingerprint)
            if existing is not None:
                return Submitted(JobSummary.of(existing), False)
    await admit()
    job_id = uuid.uuid4()
    original = await store_original(blobs, submission.tenant_id, job_id, submission.upload)
    job, encoded, statement, parameters = _job_statement(job_id, submission, original, fingerprint=fingerprint)
    try:
        # One statement writes the job, its steps and its outbox rows, and a single statement is atomic: in
        # autocommit it needs no BEGIN and COMMIT round trips, nor a session. Once it has returned, the rows are
        # committed and the events go to the relay; a failed statement (the idempotency-key race) hands nothing.
        async with writer.connect() as connection:
            await _execute_on_driver(connection, statement, parameters)
    except asyncpg.IntegrityConstraintViolationError:
        # A concurrent request with the same idempotency key won the race: answer with its job.
        if original is not None:
            await blobs.delete([original.key])
        async with sessions() as session:
            existing = await _existing(session, submission, fingerprint)
        if existing is None:
            raise
        return Submitted(JobSummary.of(existing), False)
    events_committed(sessions, encoded)
    return Submitted(job, True)


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
        sha256=upload.sha256,
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
    job_row, step_rows, events = _job_rows(job_id, submission, original, fingerprint=fingerprint, batch=batch)
    job = Job(**job_row)
    session.add(job)
    session.add_all(Step(**row) for row in step_rows)
    add_events(session, events)
    return job, events


def _job_statement(
    job_id: uuid.UUID,
    submission: Submission,
    original: ObjectRef | None,
    *,
    fingerprint: str | None,
) -> tuple[JobSummary, list[EncodedEvent], TextClause, dict[str, Any]]:
    """The one INSERT of the job, its steps and its outbox rows, and its parameters, with the job's summary and its
    encoded events (the rows' bodies, which the relay publishes once the INSERT has committed)."""
    job_row, step_rows, events = _job_rows(job_id, submission, original, fingerprint=fingerprint, batch=None)
    encoded = encode_events(events)
    event_rows = [event.row() for event in encoded]
    parameters = {f"job_{column}": value for column, value in job_row.items()}
    for prefix, rows in (("step", step_rows), ("event", event_rows)):
        for number, row in enumerate(rows):
            parameters.update((f"{prefix}{number}_{column}", value) for column, value in row.items())
    statement = _job_insert(tuple(job_row), tuple(step_rows[0]), len(step_rows), len(event_rows))
    summary = JobSummary(job_id, JobState.ACCEPTED, job_row["step_count"], submission.correlation_id)
    return summary, encoded, statement, parameters


@functools.lru_cache(maxsize=64)
def _job_insert(
    job_columns: tuple[str, ...], step_columns: tuple[str, ...], step_count: int, event_count: int
) -> TextClause:
    """INSERT INTO outbox, with the job's and its steps' INSERTs as CTEs, for a job of this shape.

    Text with typed parameters, built once per shape: SQLAlchemy cannot cache the compiled form of a Core INSERT
    with INSERT CTEs and would compile it again for every job, while a text statement is compiled once and
    asyncpg prepares it once per connection.
    """
    rows = [
        _values(Job.__table__, job_columns, ["job_"]),
        _values(Step.__table__, step_columns, [f"step{number}_" for number in range(step_count)]),
        _values(Outbox.__table__, OUTBOX_COLUMNS, [f"event{number}_" for number in range(event_count)]),
    ]
    (jobs, job_parameters), (steps, step_parameters), (outbox, event_parameters) = rows
    statement = text(
        f"WITH job_insert AS (INSERT INTO {Job.__tablename__} {jobs}), "
        f"steps_insert AS (INSERT INTO {Step.__tablename__} {steps}) "
        f"INSERT INTO {Outbox.__tablename__} {outbox}"
    )
    return statement.bindparams(*job_parameters, *step_parameters, *event_parameters)


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A text statement as asyncpg runs it: its SQL, and its parameters' names and bind processors in order."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def arguments(self, parameters: dict[str, Any]) -> list[Any]:
        """The positional arguments of `parameters`, processed as SQLAlchemy would bind them."""
        pairs = zip(self.names, self.processors, strict=True)
        return [parameters[name] if process is None else process(parameters[name]) for name, process in pairs]


@functools.lru_cache(maxsize=64)
def driver_statement(statement: TextClause, dialect: Dialect) -> DriverStatement:
    """`statement` compiled once for `dialect` (asyncpg's, `$n` placeholders), with each parameter's processor.

    The processors are the ones SQLAlchemy's own execution applies (the JSON columns' serializer, for one), so
    the driver receives the same values either way.
    """
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    processors = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    return DriverStatement(compiled.string, names, processors)


async def _execute_on_driver(connection: AsyncConnection, statement: TextClause, parameters: dict[str, Any]) -> None:
    """Run the job's INSERT on the pooled connection's asyncpg connection, outside SQLAlchemy's execution.

    The statement is one text INSERT in autocommit with nothing to return, so SQLAlchemy's execution adds only
    CPU per submission (its compiled-cache lookup, parameter processing, cursor and result objects, a greenlet
    switch): about a third of the INSERT's CPU on this machine. asyncpg prepares the SQL once per connection.
    Server errors arrive as asyncpg's: the caller takes an integrity violation as it takes SQLAlchemy's
    `IntegrityError`, and the outage handlers answer asyncpg's connection errors with 503 as they do SQLAlchemy's.
    After any other failure (a broken connection, a shutdown, a cancellation mid-statement) the connection's state
    is unknown, so it is invalidated, as SQLAlchemy does on a disconnect: the pool opens a new one rather than hand
    the broken one to the next request. The job's INSERT fails that way only in an outage.
    """
    prepared = driver_statement(statement, connection.dialect)
    driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
    try:
        await driver.execute(prepared.sql, *prepared.arguments(parameters))
    except asyncpg.IntegrityConstraintViolationError:
        raise  # the statement failed whole and the connection is fine: the caller finds the job that won
    except BaseException:
        await connection.invalidate()
        raise


def _values(table: FromClause, columns: tuple[str, ...], prefixes: list[str]) -> tuple[str, list[BindParameter[Any]]]:
    """`(columns) VALUES (...), (...)` of one row per prefix, and its parameters, typed as the table's columns."""
    rows = ", ".join("(" + ", ".join(f":{prefix}{column}" for column in columns) + ")" for prefix in prefixes)
    parameters = [bindparam(prefix + column, type_=table.c[column].type) for prefix in prefixes for column in columns]
    return f"({', '.join(columns)}) VALUES {rows}", parameters


def _job_rows(
    job_id: uuid.UUID,
    submission: Submission,
    original: ObjectRef | None,
    *,
    fingerprint: str | None,
    batch: BatchPlace | None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[Event]]:
    """The job's row, its steps' rows and the events that start it."""
    slip = plan(submission.pipeline)
    steps = flatten(slip)
    upload = submission.upload
    job_row: dict[str, Any] = {
        "id": job_id,
        "tenant_id": submission.tenant_id,
        "state": JobState.ACCEPTED,
        "pipeline": submission.pipeline_json,
        "step_count": len(steps),
        "leaf_count": sum(step.is_leaf for step in steps),
        "input_key": original.key if original else None,
        "input_content_type": original.content_type if original else None,
        "input_bytes": original.bytes if original else None,
        "input_sha256": original.sha256 if original else None,
        "input_width": original.width if original else None,
        "input_height": original.height if original else None,
        "source_url": submission.source_url,
        "source_name": upload.name if upload else None,
        "batch_id": batch.batch_id if batch else None,
        "batch_position": batch.position if batch else None,
        "item_id": batch.item_id if batch else None,
        "webhook_url": submission.webhook_url,
        "idempotency_key": submission.idempotency_key,
        "request_hash": fingerprint,
        "correlation_id": submission.correlation_id,
        "traceparent": submission.traceparent,
    }
    step_rows = [
        {
            "job_id": job_id,
            "step_id": step.id,
            "position": position,
            "parent_id": step.parent_id,
            "op": step.spec.op,
            "params": step.spec.params.model_dump(mode="json"),
            "is_leaf": step.is_leaf,
        }
        for position, step in enumerate(steps)
    ]
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
            step_count=job_row["step_count"],
            leaf_count=job_row["leaf_count"],
        )
        requests = [
            StepRequested(
                **envelope, service=service_for(step.spec.op), input=original, step=step, remaining=rest, lane=lane
            )
            for step, rest in first_steps(slip)
        ]
        events = [submitted, *requests]
    return job_row, step_rows, events
