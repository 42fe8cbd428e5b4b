"""Migration 0004 keeps existing keys working: tenant keys get the four tenant scopes, admin keys `admin`."""

import asyncio
import uuid

import asyncpg
import pytest
from alembic import command

from pixtools_db.migrate import alembic_config
from pixtools_testkit.fixtures import scratch_database

pytestmark = pytest.mark.integration


def _sql(dsn: str, statement: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetch(statement, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


def test_keys_from_before_scopes_keep_working_and_a_downgrade_restores_them(infra):
    with scratch_database(infra.postgres_url, "pixtools_migration") as database:
        url, dsn = database.url, database.dsn
        command.upgrade(alembic_config(url), "0003")
        tenant = uuid.uuid4()
        _sql(dsn, "INSERT INTO tenants (id, name, webhook_secret) VALUES ($1, 'old', 'whsec_x')", tenant)
        _sql(
            dsn,
            "INSERT INTO api_keys (id, tenant_id, key_hash, prefix) VALUES (gen_random_uuid(), $1, 'a', 'pxt_abcd')",
            tenant,
        )
        _sql(
            dsn,
            "INSERT INTO api_keys (id, key_hash, prefix, scope) VALUES (gen_random_uuid(), 'b', 'pxa_abcd', 'admin')",
        )
        command.upgrade(alembic_config(url), "0004")
        rows = {row["key_hash"]: row for row in _sql(dsn, "SELECT key_hash, name, scopes, revoked_at FROM api_keys")}
        assert rows["a"]["scopes"] == ["jobs:read", "jobs:write", "keys:manage", "webhooks:manage"]
        assert rows["b"]["scopes"] == ["admin"]
        assert rows["a"]["name"] == "tenant key pxt_abcd"
        command.downgrade(alembic_config(url), "0003")
        scopes = {row["key_hash"]: row["scope"] for row in _sql(dsn, "SELECT key_hash, scope FROM api_keys")}
        assert scopes == {"a": "tenant", "b": "admin"}
