"""`pixtools-admin` answers bad input with one line and exit status 2, and prints no secret it was not asked for."""

import asyncio
import os
import secrets
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from pixtools_db import ApiKey, Tenant, create_engine, session_factory

pytestmark = pytest.mark.integration

ADMIN = Path(sys.executable).parent / "pixtools-admin"


async def _admin(database_url: str, *arguments: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(ADMIN),
        *arguments,
        env={**os.environ, "PIXTOOLS_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def _webhook_secret(database_url: str, name: str) -> str:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            secret = await session.scalar(select(Tenant.webhook_secret).where(Tenant.name == name))
    finally:
        await engine.dispose()
    assert secret is not None
    return secret


async def test_a_new_tenant_prints_its_key_last(database_url):
    name = f"acme-{secrets.token_hex(3)}"
    code, stdout, _ = await _admin(database_url, "create-tenant", name)
    assert code == 0
    assert stdout.splitlines()[-1].startswith("pxt_")
    assert await _webhook_secret(database_url, name) not in stdout


async def test_a_duplicate_tenant_name_is_one_line_and_exit_2_without_the_secret(database_url):
    name = f"acme-{secrets.token_hex(3)}"
    assert (await _admin(database_url, "create-tenant", name))[0] == 0
    code, stdout, stderr = await _admin(database_url, "create-tenant", name)
    assert code == 2
    assert stderr.strip() == f"pixtools-admin: a tenant named {name!r} already exists; choose another name"
    assert "Traceback" not in stderr
    assert "whsec" not in stdout + stderr


@pytest.mark.parametrize(
    "command", [("migrate",), ("create-tenant", "x"), ("create-admin-key",), ("list-keys",), ("revoke-key", "pxt_x")]
)
async def test_an_unreachable_database_is_one_line_and_exit_2_without_credentials(command):
    unreachable = "postgresql+asyncpg://admin:hunter2@127.0.0.1:1/pixtools"
    code, stdout, stderr = await _admin(unreachable, *command)
    assert code == 2
    assert stderr.startswith("pixtools-admin: cannot reach the database at 127.0.0.1:1/pixtools")
    assert len(stderr.strip().splitlines()) == 1
    assert "hunter2" not in stdout + stderr


async def test_an_empty_tenant_name_is_refused_with_exit_2(database_url):
    code, _, stderr = await _admin(database_url, "create-tenant", "  ")
    assert code == 2
    assert "a tenant name is 1 to 200 characters" in stderr


async def test_list_keys_shows_every_key_but_no_secret_and_revoke_key_ends_one(database_url):
    name = f"acme-{secrets.token_hex(3)}"
    _, created, _ = await _admin(database_url, "create-tenant", name)
    key = created.splitlines()[-1]
    code, listed, _ = await _admin(database_url, "list-keys", "--tenant", name)
    assert code == 0
    header, row = listed.splitlines()
    assert header.split("\t")[:6] == ["id", "prefix", "tenant", "name", "scopes", "state"]
    key_id, prefix, tenant, _, scopes, state = row.split("\t")[:6]
    assert (tenant, scopes, state) == (name, "jobs:read,jobs:write,keys:manage,webhooks:manage", "active")
    assert key.startswith(prefix)
    assert key not in listed
    code, everything, _ = await _admin(database_url, "list-keys")
    assert code == 0
    assert key_id in everything
    code, revoked, _ = await _admin(database_url, "revoke-key", prefix)
    assert code == 0
    assert revoked.startswith(f"API key {key_id} ({prefix}) revoked at ")
    _, listed, _ = await _admin(database_url, "list-keys", "--tenant", name)
    assert listed.splitlines()[1].split("\t")[5] == "revoked"


async def test_revoke_key_by_id_and_its_errors_exit_2(database_url):
    code, created, _ = await _admin(database_url, "create-admin-key")
    assert code == 0
    admin_key = created.splitlines()[-1]
    _, listed, _ = await _admin(database_url, "list-keys")
    key_id = next(line.split("\t")[0] for line in listed.splitlines() if admin_key.startswith(line.split("\t")[1]))
    assert (await _admin(database_url, "revoke-key", key_id))[0] == 0
    code, _, stderr = await _admin(database_url, "revoke-key", "pxt_nosuchkey")
    assert code == 2
    assert (
        stderr.strip()
        == "pixtools-admin: no API key has the id or prefix 'pxt_nosuchkey'; see pixtools-admin list-keys"
    )
    code, _, stderr = await _admin(database_url, "revoke-key", " ")
    assert code == 2
    assert "give the key's id or its prefix" in stderr
    code, _, stderr = await _admin(database_url, "list-keys", "--tenant", "no-such-tenant-anywhere")
    assert code == 2
    assert stderr.strip() == "pixtools-admin: no tenant is named 'no-such-tenant-anywhere'"
    assert "Traceback" not in stderr


async def test_a_prefix_shared_by_two_keys_is_refused_with_exit_2(database_url):
    engine = create_engine(database_url, pool_size=1)
    prefix = f"pxt_{secrets.token_hex(4)}"
    try:
        async with session_factory(engine).begin() as session:
            for _ in range(2):
                session.add(
                    ApiKey(tenant_id=None, name="twin", key_hash=secrets.token_hex(32), prefix=prefix, scopes=["admin"])
                )
    finally:
        await engine.dispose()
    code, _, stderr = await _admin(database_url, "revoke-key", prefix)
    assert code == 2
    assert stderr.strip() == f"pixtools-admin: 2 API keys have the prefix {prefix!r}; revoke one by its id"
