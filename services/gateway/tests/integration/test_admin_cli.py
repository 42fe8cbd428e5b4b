"""`pixtools-admin` answers bad input with one line and exit status 2, and prints no secret it was not asked for."""

import asyncio
import os
import secrets
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from pixtools_db import Tenant, create_engine, session_factory

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


@pytest.mark.parametrize("command", [("migrate",), ("create-tenant", "x"), ("create-admin-key",)])
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
