"""The key cache on real Postgres: forgotten on NOTIFY, emptied and bypassed while its LISTEN connection is lost."""

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pixtools_gateway.adapters.key_cache import CHANNEL, Caller, KeyCache

from .listener_support import terminate_listener, until

pytestmark = pytest.mark.integration


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
        await until(lambda: cache.by_hash("hash-1") is None, 1.0)
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
        assert await terminate_listener(db) == 1
        await until(lambda: not cache.listening, 2.0)
        assert cache.by_hash("hash-3") is None
        cache.remember(_caller(), key_hash="hash-4", since=cache.generation)
        assert cache.by_hash("hash-4") is None, "cached while nobody listens for revocations"
        await until(lambda: cache.listening, 3.0)
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


class _Partition:
    """A TCP proxy to Postgres that can go silent: it stops passing bytes either way and closes nothing."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.silent = False
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if not self.silent:
                    target.write(data)
            target.close()  # one side closed: close the other, as a real connection's end would

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)


async def _revoke_within_a_second(cache: KeyCache, db, who: Caller, key_hash: str) -> None:
    """Announce a revocation as the api_keys trigger does; the cached key must be gone within a second."""
    async with db.begin() as session:
        await session.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": str(who.key_id)})
    await until(lambda: cache.by_hash(key_hash) is None and cache.by_id(who.key_id) is None, 1.0)


async def test_a_silently_dead_listen_connection_stops_serving_cached_keys_within_a_second(database_url, db):
    url = make_url(database_url)
    partition = _Partition(url.host or "localhost", url.port or 5432)
    port = await partition.start()
    cache = KeyCache(url.set(port=port).render_as_string(hide_password=False), ttl_s=300)
    await cache.start()
    try:
        who = _caller()
        await until(lambda: cache.trusted, 2.0)
        cache.remember(who, key_hash="hash-6", since=cache.generation)
        assert cache.by_hash("hash-6") == who
        partition.silent = True  # no error, no close: the notification below never arrives
        await _revoke_within_a_second(cache, db, who, "hash-6")
        assert cache.listening, "the test meant a connection that looks alive"
    finally:
        partition.silent = False
        await cache.stop()
        await partition.stop()


async def test_a_revocation_right_after_the_listen_backend_is_killed_is_not_served_from_the_cache(database_url, db):
    cache = KeyCache(database_url, ttl_s=300)
    await cache.start()
    try:
        who = _caller()
        await until(lambda: cache.trusted, 2.0)
        cache.remember(who, key_hash="hash-7", since=cache.generation)
        assert cache.by_hash("hash-7") == who
        assert await terminate_listener(db) == 1
        await _revoke_within_a_second(cache, db, who, "hash-7")
    finally:
        await cache.stop()
