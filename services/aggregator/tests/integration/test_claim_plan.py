"""The group's claim and write statements find their jobs and steps by key, whatever the planner knows of the tables,
and Postgres keeps one plan of each per connection instead of planning them again on every execution."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from alembic import command

from pixtools_aggregator.adapters import job_statements as sql
from pixtools_db.migrate import alembic_config
from pixtools_testkit.fixtures import scratch_database

pytestmark = pytest.mark.integration

# Postgres switches a prepared statement to its generic plan after five runs when it costs no more than the custom
# ones: the test plans it that way at once.
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}

SEED = """
WITH tenant AS (INSERT INTO tenants (id, name, webhook_secret) VALUES (gen_random_uuid(), 'plan', 'x') RETURNING id),
jobs AS (
    INSERT INTO jobs (id, tenant_id, pipeline, step_count, leaf_count, correlation_id)
    SELECT gen_random_uuid(), tenant.id, '[]', 1, 1, 'c' FROM tenant, generate_series(1, $1)
    RETURNING id
)
INSERT INTO steps (job_id, step_id, position, op, params, is_leaf) SELECT id, '0', 0, 'convert', '{}', true FROM jobs
"""


async def _claim_plan(dsn: str) -> str:
    connection = await asyncpg.connect(dsn, server_settings=GENERIC_PLANS)
    try:
        # A few hundred jobs and no statistics (this machine's server runs without autovacuum): the generic plan of
        # the earlier `IN (subquery)` form scanned both tables whole here.
        await connection.execute(SEED, 300)
        job_id = await connection.fetchval("SELECT id FROM jobs LIMIT 1")
        await connection.execute(f"PREPARE claim(uuid[], uuid[]) AS {sql.CLAIM_LOCK_AND_STEPS}")
        transaction = connection.transaction()
        await transaction.start()
        try:
            # EXPLAIN takes no parameters; the ids are uuids, so they can be spelled out.
            arrays = f"ARRAY['{uuid.uuid4()}']::uuid[], ARRAY['{job_id}']::uuid[]"
            rows = await connection.fetch(f"EXPLAIN (ANALYZE) EXECUTE claim({arrays})")
        finally:
            # Only the plan is wanted: the claim it made goes.
            await transaction.rollback()
        return "\n".join(row[0] for row in rows)
    finally:
        await connection.close()


def test_the_claim_statement_reads_jobs_and_steps_by_key_in_its_generic_plan(infra):
    with scratch_database(infra.postgres_url, "pixtools_plan") as database:
        command.upgrade(alembic_config(database.url), "head")
        plan = asyncio.run(_claim_plan(database.dsn))
    assert "Seq Scan on jobs" not in plan, plan
    assert "Seq Scan on steps" not in plan, plan
    assert "Index Scan using jobs_pkey on jobs" in plan, plan
    assert "Index Scan using steps_pkey on steps" in plan, plan


async def _write_plan(dsn: str) -> str:
    connection = await asyncpg.connect(dsn, server_settings=GENERIC_PLANS)
    try:
        # As for the claim: a few hundred jobs and no statistics. The write's earlier `UPDATE ... FROM unnest(...)`
        # hashed a sequential scan of both tables here.
        await connection.execute(SEED, 300)
        # The parameters' types come from the statement's own casts.
        await connection.execute(f"PREPARE write AS {sql.WRITE_STATE}")
        # The generic plan does not depend on the values, and EXPLAIN without ANALYZE writes nothing.
        arguments = ", ".join("NULL" for _ in sql.WRITE_STATE_PARAMETERS)
        rows = await connection.fetch(f"EXPLAIN EXECUTE write({arguments})")
        return "\n".join(row[0] for row in rows)
    finally:
        await connection.close()


def test_the_write_statement_updates_jobs_and_steps_by_key_in_its_generic_plan(infra):
    with scratch_database(infra.postgres_url, "pixtools_plan") as database:
        command.upgrade(alembic_config(database.url), "head")
        plan = asyncio.run(_write_plan(database.dsn))
    for table in ("jobs", "steps", "outputs", "outbox"):
        assert f"Seq Scan on {table}" not in plan, plan
    assert "Index Scan using jobs_pkey on jobs" in plan, plan
    assert "Index Scan using steps_pkey on steps" in plan, plan
    # The outputs' duplicates are found through the unique index the conflict clause names.
    assert "Conflict Arbiter Indexes: uq_outputs_job_step_name" in plan, plan


def _write_arguments(job_ids: list[uuid.UUID], number: int) -> list[object]:
    """The write's arrays for a group that starts each job's one step and stages two events per job."""
    now = datetime.now(UTC)
    count = len(job_ids)
    arrays: dict[str, list[object]] = {
        "job_ids": list(job_ids), "job_states": ["running"] * count, "job_started": [now] * count,
        "job_finished": [None] * count, "job_updated": [now] * count, "job_codes": [None] * count,
        "job_messages": [None] * count, "step_jobs": list(job_ids), "step_ids": ["0"] * count,
        "step_states": ["succeeded"] * count, "step_started": [now] * count, "step_finished": [now] * count,
        "step_codes": [None] * count, "step_messages": [None] * count, "step_results": [json.dumps({})] * count,
        "event_ids": [uuid.uuid4() for _ in range(2 * count)], "event_types": ["job.started.v1"] * 2 * count,
        "routing_keys": ["job.started"] * 2 * count, "bodies": [b"{}"] * 2 * count, "headers": ["{}"] * 2 * count,
        "output_ids": [uuid.uuid4() for _ in job_ids], "output_jobs": list(job_ids), "output_steps": ["0"] * count,
        "output_ops": ["convert"] * count, "output_names": [f"output-{number}"] * count,
        "output_roles": ["output"] * count, "output_finals": [True] * count, "output_keys": ["key"] * count,
        "output_types": ["image/webp"] * count, "output_bytes": [1] * count, "output_sha256s": ["0"] * count,
        "output_widths": [1] * count, "output_heights": [1] * count, "notify": [str(job_id) for job_id in job_ids],
    }  # fmt: skip
    return [arrays[name] for name in sql.WRITE_STATE_PARAMETERS]


async def _plans_made(dsn: str) -> dict[str, tuple[int, int]]:
    # The server's own choice (plan_cache_mode auto), on tables with statistics, as in a deployment.
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(SEED, 2000)
        await connection.execute("ANALYZE")
        job_ids = [row[0] for row in await connection.fetch("SELECT id FROM jobs ORDER BY id LIMIT 40")]
        claim = await connection.prepare(sql.CLAIM_LOCK_AND_STEPS)
        write = await connection.prepare(sql.WRITE_STATE)
        # Groups of one to four jobs, as the aggregator gathers them.
        for number in range(20):
            group = job_ids[number : number + 1 + number % 4]
            transaction = connection.transaction()
            await transaction.start()
            try:
                await claim.fetch([uuid.uuid4() for _ in group], group)
                await write.fetch(*_write_arguments(group, number))
            finally:
                await transaction.rollback()
        plans = await connection.fetch("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        made = {row["statement"]: (row["generic_plans"], row["custom_plans"]) for row in plans}
        return {"claim": made[sql.CLAIM_LOCK_AND_STEPS], "write": made[sql.WRITE_STATE]}
    finally:
        await connection.close()


def test_postgres_keeps_one_plan_of_the_claim_and_the_write_per_connection(infra):
    with scratch_database(infra.postgres_url, "pixtools_plan") as database:
        command.upgrade(alembic_config(database.url), "head")
        plans = asyncio.run(_plans_made(database.dsn))
    # Postgres plans a prepared statement with its values for the first five executions, then keeps the generic
    # plan unless that looks dearer than the custom ones: for these two it looked dearer, so they were planned again
    # on every execution (about 0.35 ms each).
    assert plans == {"claim": (15, 5), "write": (15, 5)}, plans
