"""The aggregator's SQL, built once: constructing and cache-keying a statement per event costs more than running it.

`SqlJobRepository` (`adapters/jobs.py`) runs these; a group's statements take arrays, so one prepared statement
serves every group size.
"""

import re
from typing import cast

from sqlalchemy import String, Table, bindparam, exists, func, select
from sqlalchemy.dialects.postgresql import insert

from pixtools_contracts import JOB_UNFINISHED
from pixtools_db import Batch, Inbox, Job, Output, Step

CONSUMER = "aggregator"
JOBS_CHANNEL = "pixtools_jobs"
"""The Postgres NOTIFY channel the gateway's event stream listens on; the payload is the job id."""
BATCHES_CHANNEL = "pixtools_batches"
"""The NOTIFY channel of batch progress: a batch's job changed state, or the batch finished; the payload is its id."""

OUTPUT_FIELDS = (
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
CLAIM = (
    insert(Inbox)
    .values(consumer=CONSUMER, event_id=bindparam("event_id"))
    .on_conflict_do_nothing(index_elements=[Inbox.consumer, Inbox.event_id])
    .returning(Inbox.event_id)
)
LOCK_JOB = select(Job).where(Job.id == bindparam("job_id")).with_for_update()
STEPS = select(Step).where(Step.job_id == bindparam("job_id")).order_by(Step.position)
# A group's statements take arrays, so one prepared statement serves every group size.
JOBS = cast(Table, Job.__table__)
STEPS_TABLE = cast(Table, Step.__table__)
# One round trip claims the group's inbox rows, locks the jobs of the claimed events in id order (so two
# transactions that lock some of the same jobs cannot each wait for the other), and reads their steps. It returns
# a row per claimed event and step of its job, or one row with NULLs where the job does not exist: an event that
# is not returned was a duplicate. The jobs come back as they are once locked (a waiter gets the row its
# predecessor committed). The steps are locked too, each after its job: the statement's snapshot was taken before
# any lock wait, and only a locked row is re-read at its latest committed version, so the steps are as fresh as
# the job. Every writer of a job's steps holds the job's lock first, so these step locks wait for no one else.
# Each job and its steps are looked up by key (a lateral subquery with a locking clause is never flattened into a
# join), so the plan cannot become a scan of the whole table: the generic plan of the earlier `IN (subquery)` form
# read every job and step while the tables were small or had no statistics, at 0.3-4 ms per group.
# The pairs are read through `LIMIT cardinality($1)`, which keeps every pair (the two arrays have one length) but
# is estimated at one row in the generic plan (see `WRITE_STATE`): with the bare `unnest`'s 10 the generic plan
# looked dearer than a custom one for the group's real size, so Postgres re-planned the claim on every execution.
# It runs on the session's asyncpg connection ($1: event ids, $2: their job ids); the rows are read by position:
# the event id, its job id, the job's columns (`JOB_ATTRIBUTES`), then the step's (`STEP_ATTRIBUTES`).
CLAIM_LOCK_AND_STEPS = f"""WITH pairs AS (
    SELECT * FROM unnest(CAST($1 AS uuid[]), CAST($2 AS uuid[])) AS pairs(event_id, job_id) LIMIT cardinality($1)
), claimed AS (
    INSERT INTO inbox (consumer, event_id) SELECT '{CONSUMER}', event_id FROM pairs
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING event_id
), locked AS MATERIALIZED (
    SELECT job.* FROM (SELECT DISTINCT job_id FROM pairs JOIN claimed USING (event_id) ORDER BY job_id) AS claimed_jobs
    CROSS JOIN LATERAL (SELECT * FROM jobs WHERE jobs.id = claimed_jobs.job_id FOR UPDATE) AS job
), locked_steps AS MATERIALIZED (
    SELECT step.* FROM locked
    CROSS JOIN LATERAL (SELECT * FROM steps WHERE steps.job_id = locked.id ORDER BY position FOR UPDATE) AS step
)
SELECT pairs.event_id, pairs.job_id,
    {", ".join(f"locked.{job_column.name}" for job_column in JOBS.c)},
    {", ".join(f"locked_steps.{step_column.name}" for step_column in STEPS_TABLE.c)}
FROM claimed JOIN pairs USING (event_id) LEFT JOIN locked ON locked.id = pairs.job_id
LEFT JOIN locked_steps ON locked_steps.job_id = locked.id
ORDER BY pairs.job_id, locked_steps.position"""
JOB_ATTRIBUTES = tuple(Job.__mapper__.get_property_by_column(job_column).key for job_column in JOBS.c)
STEP_ATTRIBUTES = tuple(Step.__mapper__.get_property_by_column(step_column).key for step_column in STEPS_TABLE.c)
# On the table: the ORM's bulk insert path would first flush the session (the job's and steps' updates), a second
# flush before the one at commit, and spends more on its own bookkeeping than on the statement.
OUTPUTS = cast(Table, Output.__table__)
ADD_OUTPUTS = insert(OUTPUTS).on_conflict_do_nothing(constraint="uq_outputs_job_step_name").returning(OUTPUTS.c.id)
FINAL_OUTPUTS = (
    select(Output)
    .join(Step, (Step.job_id == Output.job_id) & (Step.step_id == Output.step_id))
    .where(Output.job_id == bindparam("job_id"), Output.is_final.is_(True))
    .order_by(Step.position, Output.name)
)
# What the state machine changes on a job and on a step. Changed jobs and steps are written by one statement for
# the whole transaction, with every one of these columns from the row in hand (the job is locked, so nothing else
# changed them since it was read); a row with any other change is left to the session's flush.
JOB_STATE_COLUMNS = ("state", "started_at", "finished_at", "updated_at", "error_code", "error_message")
STEP_STATE_COLUMNS = ("state", "started_at", "finished_at", "error_code", "error_message", "result")
# The changed jobs and steps, the staged events' outbox rows (as `pixtools_db.outbox.add_events` writes them), the
# waiting outputs (keeping the first copy of any), and one NOTIFY per changed job (the payload stays the job id), in
# one statement before the commit; the arrays may be empty. It returns the ids of the outputs it inserted. The step
# results travel as JSON text, and None as SQL NULL, as the session's flush writes it. It runs on the session's
# asyncpg connection itself, with numbered parameters in `WRITE_STATE_PARAMETERS`' order: through SQLAlchemy, the
# binding of its 34 arrays cost more CPU than asyncpg's encoding of them.
# Each UPDATE reads its arrays through `LIMIT cardinality(...)`, which keeps every row (the arrays of one kind have
# one length) but is estimated at one row in a generic plan: a limit that is not a constant counts as a tenth of
# its input, and the input is the planner's default 10 rows for a function. That does two things. A one-row input
# joins by a key lookup on `jobs_pkey` or `steps_pkey` (the bare `unnest` of 10 rows was joined by hashing a
# sequential scan of the whole table while the table was small or had no statistics, the planner's floor being 10
# pages). And the generic plan no longer looks dearer than a custom plan for the group's real sizes, so Postgres
# keeps it after its first five executions on a connection instead of planning the statement again on each one.
WRITE_STATE_PARAMETERS = (
    "job_ids", "job_states", "job_started", "job_finished", "job_updated", "job_codes", "job_messages",
    "step_jobs", "step_ids", "step_states", "step_started", "step_finished", "step_codes", "step_messages",
    "step_results", "event_ids", "event_types", "routing_keys", "bodies", "headers", "output_ids", "output_jobs",
    "output_steps", "output_ops", "output_names", "output_roles", "output_finals", "output_keys", "output_types",
    "output_bytes", "output_sha256s", "output_widths", "output_heights", "notify",
)  # fmt: skip
_WRITE_STATE_NAMED = f"""WITH written_jobs AS (
    UPDATE jobs SET state = v.state, started_at = v.started_at, finished_at = v.finished_at,
        updated_at = v.updated_at, error_code = v.error_code, error_message = v.error_message
    FROM (
        SELECT * FROM unnest(
            CAST(:job_ids AS uuid[]), CAST(:job_states AS text[]), CAST(:job_started AS timestamptz[]),
            CAST(:job_finished AS timestamptz[]), CAST(:job_updated AS timestamptz[]), CAST(:job_codes AS text[]),
            CAST(:job_messages AS text[])
        ) LIMIT cardinality(CAST(:job_ids AS uuid[]))
    ) AS v(id, state, started_at, finished_at, updated_at, error_code, error_message)
    WHERE jobs.id = v.id
), written_steps AS (
    UPDATE steps SET state = v.state, started_at = v.started_at, finished_at = v.finished_at,
        error_code = v.error_code, error_message = v.error_message, result = CAST(v.result AS jsonb)
    FROM (
        SELECT * FROM unnest(
            CAST(:step_jobs AS uuid[]), CAST(:step_ids AS text[]), CAST(:step_states AS text[]),
            CAST(:step_started AS timestamptz[]), CAST(:step_finished AS timestamptz[]), CAST(:step_codes AS text[]),
            CAST(:step_messages AS text[]), CAST(:step_results AS text[])
        ) LIMIT cardinality(CAST(:step_jobs AS uuid[]))
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

WRITE_STATE = re.sub(r":(\w+)", lambda name: f"${WRITE_STATE_PARAMETERS.index(name[1]) + 1}", _WRITE_STATE_NAMED)


# FOR NO KEY UPDATE, not FOR UPDATE: a transaction that updates its job twice holds FOR KEY SHARE on the batch
# (the foreign key check), and two of those upgrading to FOR UPDATE would deadlock. NO KEY UPDATE still
# excludes itself, which is all settling needs.
LOCK_BATCH = (
    select(Batch)
    .where(Batch.id == bindparam("batch_id"))
    .with_for_update(key_share=True)
    .execution_options(populate_existing=True)
)
# IN over the unfinished states, not NOT IN over the terminal ones, so ix_jobs_batch_state answers it.
UNFINISHED_JOBS = select(exists().where(Job.batch_id == bindparam("batch_id"), Job.state.in_(JOB_UNFINISHED)))
COUNT_BATCH_JOBS = select(Job.state, func.count()).where(Job.batch_id == bindparam("batch_id")).group_by(Job.state)
NOTIFY_BATCH = select(func.pg_notify(BATCHES_CHANNEL, bindparam("batch_id", type_=String)))
