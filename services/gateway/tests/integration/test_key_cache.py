"""The key cache on real Postgres: forgotten on NOTIFY, emptied and bypassed while its LISTEN connection is lost."""

import asyncio
import uuid

import pytest
from sqlalchemy import text

from pixtools_gateway.adapters.key_cache import CHANNEL, Caller, KeyCache

pytestmark = pytest.mark.integration


async def _until(condition, seconds: float) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {seconds} s")


def _caller() -> Caller:
    return Caller(key_id=uuid.uuid4(), tenant_id=uuid.uuid4(), scopes=frozenset({"jobs:read"}))


async def test_a_notification_forgets_the_key_by_hash_and_by_id(database_url, db):
    cache = KeyCache(database_url, ttl_s=300)
    await cache.start()
    try:
        who = _caller()
        cache.remember(who, key_hash="hash-1", since=cache.generation)
        assert cache.by_hash("hash-1") == who
        assert cache.by_id(who.key_id) == who
        async with db.begin() as session:
            await session.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": str(who.key_id)})
        await _until(lambda: cache.by_hash("hash-1") is None, 1.0)
        assert cache.by_id(who.key_id) is None
    finally:
        await cache.stop()


async def test_a_read_that_raced_a_notification_is_not_cached(database_url):
    cache = KeyCache(database_url, ttl_s=300)
    await cache.start()
    try:
        since = cache.generation
        cache.forget(uuid.uuid4())  # a key changed while the request was reading its row
        who = _caller()
        cache.remember(who, key_hash="hash-2", since=since)
        assert cache.by_hash("hash-2") is None
    finally:
        await cache.stop()


async def test_a_lost_listen_connection_empties_the_cache_until_it_is_back(database_url, db):
    cache = KeyCache(database_url, ttl_s=300)
    await cache.start()
    try:
        assert cache.listening
        cache.remember(_caller(), key_hash="hash-3", since=cache.generation)
        async with db.begin() as session:
            killed = await session.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE :listen"
                ),
                {"listen": f"%LISTEN%{CHANNEL}%"},
            )
        assert killed == 1
        await _until(lambda: not cache.listening, 2.0)
        assert cache.by_hash("hash-3") is None
        cache.remember(_caller(), key_hash="hash-4", since=cache.generation)
        assert cache.by_hash("hash-4") is None, "cached while nobody listens for revocations"
        await _until(lambda: cache.listening, 3.0)
        who = _caller()
        cache.remember(who, key_hash="hash-5", since=cache.generation)
        assert cache.by_hash("hash-5") == who
    finally:
        await cache.stop()


async def test_stopping_closes_the_connection_without_reporting_it_lost(database_url, caplog):
    cache = KeyCache(database_url, ttl_s=300)
    await cache.start()
    assert cache.listening
    with caplog.at_level("WARNING", logger="pixtools_gateway.adapters.key_cache"):
        await cache.stop()
        await asyncio.sleep(0.1)  # a termination listener would have run by now
    assert not cache.listening
    assert "notifications lost" not in caplog.text
