"""Migration 0006 keeps what the idempotency constraint and the outputs' foreign keys promised, up and down."""

import asyncio
import uuid

import asyncpg
import pytest
from alembic import command

from pixtools_db.migrate import alembic_config
from pixtools_testkit.fixtures import scratch_database

pytestmark = pytest.mark.integration

JOB = "INSERT INTO jobs (id, tenant_id, pipeline, step_count, leaf_count, correlation_id, idempotency_key)"
STEP = "INSERT INTO steps (job_id, step_id, position, op, params, is_leaf) VALUES ($1, '0', 0, 'convert', '{}', true)"
OUTPUT = (
    "INSERT INTO outputs (id, job_id, step_id, op, name, role, is_final, key, content_type, bytes, sha256)"
    " VALUES ($1, $2, $3, 'convert', 'image', 'image', true, 'k', 'image/webp', 1, 's')"
)


async def _promises_hold(dsn: str) -> None:
    """Keys are unique per tenant, keyless jobs are not limited, outputs need their step and go with their job."""
    connection = await asyncpg.connect(dsn)
    try:
        tenant = uuid.uuid4()
        tenants = "INSERT INTO tenants (id, name, webhook_secret) VALUES ($1::uuid, $1::text, 'x')"
        await connection.execute(tenants, tenant)
        values = " VALUES ($1, $2, '[]', 1, 1, 'c', $3)"
        for _ in range(2):
            await connection.execute(JOB + values, uuid.uuid4(), tenant, None)
        keyed = uuid.uuid4()
        await connection.execute(JOB + values, keyed, tenant, "order-1")
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(JOB + values, uuid.uuid4(), tenant, "order-1")
        await connection.execute(STEP, keyed)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await connection.execute(OUTPUT, uuid.uuid4(), keyed, "no-such-step")
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await connection.execute(OUTPUT, uuid.uuid4(), uuid.uuid4(), "0")
        await connection.execute(OUTPUT, uuid.uuid4(), keyed, "0")
        await connection.execute("DELETE FROM jobs WHERE id = $1", keyed)
        assert await connection.fetchval("SELECT count(*) FROM outputs WHERE job_id = $1", keyed) == 0
    finally:
        await connection.close()


def test_keys_stay_unique_and_outputs_stay_tied_to_their_job_before_after_and_after_a_downgrade(infra):
    with scratch_database(infra.postgres_url, "pixtools_migration") as database:
        command.upgrade(alembic_config(database.url), "0005")
        asyncio.run(_promises_hold(database.dsn))
        command.upgrade(alembic_config(database.url), "0006")
        asyncio.run(_promises_hold(database.dsn))
        command.downgrade(alembic_config(database.url), "0005")
        asyncio.run(_promises_hold(database.dsn))
