"""The group's claim and write statements find their jobs and steps by key, whatever the planner knows of the tables."""

import asyncio
import uuid

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
