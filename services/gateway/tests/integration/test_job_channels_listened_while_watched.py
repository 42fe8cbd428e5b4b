"""The job and batch channels are listened on only while a stream waits, on the key cache's one connection."""

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from pixtools_gateway.adapters.key_cache import CHANNEL as KEYS_CHANNEL
from pixtools_gateway.adapters.key_cache import KeyCache
from pixtools_gateway.adapters.notifications import BATCH_CHANNEL, CHANNEL, JobNotifications
from pixtools_gateway.api import progress

from .job_control_support import RESIZE_THEN_PNG
from .listener_support import notify, terminate_listener, until

pytestmark = pytest.mark.integration

ONLY_KEYS = {KEYS_CHANNEL}
WATCHED = {KEYS_CHANNEL, CHANNEL, BATCH_CHANNEL}


async def _channels(cache: KeyCache) -> set[str]:
    """What the cache's connection LISTENs on, asked on that connection between its other commands."""
    async with cache._commands:
        assert cache._connection is not None
        return {row[0] for row in await cache._connection.fetch("SELECT pg_listening_channels()")}


async def _until_channels(cache: KeyCache, wanted: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (found := await _channels(cache)) != wanted:
        if time.monotonic() > deadline:
            pytest.fail(f"listening on {found}, not {wanted}, after {seconds} s")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def listening(database_url) -> AsyncIterator[tuple[KeyCache, JobNotifications]]:
    cache = KeyCache(database_url, ttl_s=300)
    await cache.start()
    notifications = JobNotifications(cache, linger_s=0.1)
    try:
        yield cache, notifications
    finally:
        await notifications.close()
        await cache.stop()


async def test_no_job_or_batch_channel_is_listened_on_while_no_stream_waits(listening):
    cache, notifications = listening
    assert await _channels(cache) == ONLY_KEYS
    async with notifications.watch(str(uuid.uuid4())):
        pass
    await _until_channels(cache, ONLY_KEYS, 1.0)


async def test_a_watch_is_entered_listening_and_the_last_to_leave_unlistens_after_the_linger(listening, db):
    cache, notifications = listening
    job_id = str(uuid.uuid4())
    async with notifications.watch(job_id) as changed:
        assert await _channels(cache) == WATCHED
        async with notifications.watch(str(uuid.uuid4())):
            pass
        await asyncio.sleep(0.3)  # past the linger, but one stream still waits
        assert await _channels(cache) == WATCHED
        await notify(db, CHANNEL, job_id)
        await asyncio.wait_for(changed.wait(), 0.5)
    assert await _channels(cache) == WATCHED, "lingers"
    await _until_channels(cache, ONLY_KEYS, 1.0)


async def test_a_change_committed_as_soon_as_the_watch_is_entered_is_notified(listening, db):
    cache, notifications = listening
    for _ in range(20):
        await _until_channels(cache, ONLY_KEYS, 1.0)  # so that each watch has to LISTEN first
        job_id = str(uuid.uuid4())
        async with notifications.watch(job_id) as changed:
            await notify(db, CHANNEL, job_id)
            await asyncio.wait_for(changed.wait(), 0.5)


async def test_many_streams_opening_and_closing_beside_the_ping_leave_the_connection_alone(database_url, db, caplog):
    cache = KeyCache(database_url, ttl_s=300)
    await cache.start()
    notifications = JobNotifications(cache, linger_s=0)  # UNLISTEN whenever the last leaves: the most commands
    connection = cache._connection
    try:
        caplog.set_level(logging.WARNING, logger="pixtools_gateway.adapters.key_cache")

        async def stream() -> None:
            for _ in range(10):
                await asyncio.sleep(random.uniform(0, 0.05))
                async with notifications.watch(str(uuid.uuid4())):
                    await asyncio.sleep(random.uniform(0, 0.01))

        await asyncio.gather(*(stream() for _ in range(100)))  # about half a second: pings run meanwhile
        await asyncio.sleep(0.3)  # a ping after the last release
        assert not caplog.records, [record.getMessage() for record in caplog.records]
        assert cache._connection is connection, "never reconnected"
        assert cache.trusted
        await _until_channels(cache, ONLY_KEYS, 1.0)
        job_id = str(uuid.uuid4())
        async with notifications.watch(job_id) as changed:
            await notify(db, CHANNEL, job_id)
            await asyncio.wait_for(changed.wait(), 0.5)
    finally:
        await notifications.close()
        await cache.stop()


async def test_a_waiting_streams_channel_is_listened_on_again_after_the_connection_comes_back(listening, db):
    cache, notifications = listening
    job_id = str(uuid.uuid4())
    async with notifications.watch(job_id) as changed:
        lost = cache._connection
        assert await terminate_listener(db) == 1
        await until(lambda: cache.listening and cache._connection is not lost, 3.0)  # reconnected
        await _until_channels(cache, WATCHED, 1.0)
        changed.clear()
        await notify(db, CHANNEL, job_id)
        await asyncio.wait_for(changed.wait(), 0.5)
    await _until_channels(cache, ONLY_KEYS, 1.0)


async def test_a_job_stream_ends_on_the_cancels_notification_not_on_its_poll(api, tenant_key, monkeypatch):
    monkeypatch.setattr(progress, "POLL_S", 30.0)
    submitted = await api.client.post(
        "/v1/jobs",
        json={"source_url": "https://images.example.com/cat.jpg", "pipeline": RESIZE_THEN_PNG},
        headers=api.as_tenant(tenant_key),
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    notifications = api.client._transport.app.state.resources.notifications  # type: ignore[attr-defined]
    stream = asyncio.create_task(api.client.get(f"/v1/jobs/{job_id}/events", headers=api.as_tenant(tenant_key)))
    await until(lambda: job_id in notifications._waiters, 3.0)  # the stream started waiting
    await asyncio.sleep(0.1)  # the stream has read the job and waits on its change
    cancelled = await api.client.delete(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))
    assert cancelled.status_code == 200, cancelled.text
    started = time.monotonic()
    response = await asyncio.wait_for(stream, 5.0)
    assert time.monotonic() - started < 1.0, "woken by the poll, not the notification"
    assert response.status_code == 200
    assert '"state":"cancelled"' in response.text.replace(" ", "")
