"""Migration 0007: deleting a job or a batch finds its webhook deliveries by key, not by scanning them all."""

import asyncio

import asyncpg
import pytest
from alembic import command

from pixtools_db.migrate import alembic_config
from pixtools_testkit.fixtures import scratch_database

pytestmark = pytest.mark.integration

SEED = """
WITH tenant AS (INSERT INTO tenants (id, name, webhook_secret) VALUES (gen_random_uuid(), 'hooks', 'x') RETURNING id),
batch AS (
    INSERT INTO batches (id, tenant_id, source, pipeline, item_count, duplicates, correlation_id)
    SELECT gen_random_uuid(), id, 'urls', '[]', 1, '[]', 'c' FROM tenant RETURNING id, tenant_id
),
jobs AS (
    INSERT INTO jobs (id, tenant_id, batch_id, pipeline, step_count, leaf_count, correlation_id)
    SELECT gen_random_uuid(), batch.tenant_id, batch.id, '[]', 1, 1, 'c' FROM batch, generate_series(1, $1)
    RETURNING id, tenant_id, batch_id
)
INSERT INTO webhook_deliveries (id, tenant_id, job_id, batch_id, url, event_type, payload)
SELECT gen_random_uuid(), tenant_id, id, NULL, 'https://hooks.example/', 'job.completed.v1', '\\x00'::bytea FROM jobs
UNION ALL
SELECT gen_random_uuid(), tenant_id, NULL, id, 'https://hooks.example/', 'batch.completed.v1', '\\x00'::bytea FROM batch
"""
# What the foreign keys' cascades run for each deleted parent (Postgres's own referential-integrity query), with
# the plan it caches: a generic one.
CASCADE = "DELETE FROM ONLY webhook_deliveries WHERE $1 OPERATOR(pg_catalog.=) {column}"


async def _cascade_plans(dsn: str) -> dict[str, str]:
    """The generic plan of each cascade's delete, on an analysed table of a few thousand deliveries."""
    connection = await asyncpg.connect(dsn, server_settings={"plan_cache_mode": "force_generic_plan"})
    try:
        if not await connection.fetchval("SELECT count(*) FROM webhook_deliveries"):
            await connection.execute(SEED, 3000)
            await connection.execute("ANALYZE webhook_deliveries")
        job_id, batch_id = await connection.fetchrow("SELECT id, batch_id FROM jobs LIMIT 1")
        plans = {}
        for column, parent in (("job_id", job_id), ("batch_id", batch_id)):
            async with connection.transaction():
                rows = await connection.fetch(f"EXPLAIN {CASCADE.format(column=column)}", parent)
                plans[column] = "\n".join(row[0] for row in rows)
        return plans
    finally:
        await connection.close()


async def _deleting_a_job_takes_its_deliveries_only(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        first, second = [row[0] for row in await connection.fetch("SELECT id FROM jobs ORDER BY id LIMIT 2")]
        await connection.execute("DELETE FROM jobs WHERE id = $1", first)
        assert await connection.fetchval("SELECT count(*) FROM webhook_deliveries WHERE job_id = $1", first) == 0
        assert await connection.fetchval("SELECT count(*) FROM webhook_deliveries WHERE job_id = $1", second) == 1
    finally:
        await connection.close()


def test_a_deleted_job_or_batch_finds_its_webhook_deliveries_by_index_and_not_before_0007(infra):
    with scratch_database(infra.postgres_url, "pixtools_migration") as database:
        command.upgrade(alembic_config(database.url), "head")
        plans = asyncio.run(_cascade_plans(database.dsn))
        assert "ix_webhook_deliveries_job" in plans["job_id"], plans["job_id"]
        assert "ix_webhook_deliveries_batch" in plans["batch_id"], plans["batch_id"]
        assert not any("Seq Scan" in plan for plan in plans.values()), plans
        asyncio.run(_deleting_a_job_takes_its_deliveries_only(database.dsn))

        command.downgrade(alembic_config(database.url), "0006")
        before = asyncio.run(_cascade_plans(database.dsn))
        assert all("Seq Scan on webhook_deliveries" in plan for plan in before.values()), before
        command.upgrade(alembic_config(database.url), "head")
        assert "ix_webhook_deliveries_job" in asyncio.run(_cascade_plans(database.dsn))["job_id"]
