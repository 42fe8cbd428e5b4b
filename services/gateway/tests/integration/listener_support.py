"""Helpers of the tests on the gateway's LISTEN connection (the key cache's): waiting for a state, ending it, NOTIFY."""

import asyncio

import pytest
from sqlalchemy import text

from pixtools_gateway.adapters.key_cache import APPLICATION_NAME


async def until(condition, seconds: float) -> None:
    """Wait until `condition()` holds, polling every 50 ms; fail the test after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {seconds} s")


async def terminate_listener(db) -> int:
    """End the key cache's LISTEN connection from the server side, as a Postgres restart or an admin would."""
    async with db.begin() as session:
        killed = await session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": APPLICATION_NAME},
        )
    return int(killed or 0)


async def notify(db, channel: str, payload: str) -> None:
    """Commit one NOTIFY."""
    async with db.begin() as session:
        await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})
