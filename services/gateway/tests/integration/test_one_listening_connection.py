"""Job and batch notifications ride on the key cache's LISTEN connection, and come back with it after a loss."""

import asyncio
import uuid

import pytest
from sqlalchemy import text

from pixtools_gateway.adapters.key_cache import KeyCache
from pixtools_gateway.adapters.notifications import BATCH_CHANNEL, CHANNEL, JobNotifications

from .listener_support import notify, terminate_listener, until

pytestmark = pytest.mark.integration


async def _other_backends(db) -> int:
    """The other client connections to this database."""
    async with db.begin() as session:
        found = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        )
    return int(found or 0)


async def test_job_and_batch_notifications_wake_streams_over_the_key_caches_one_connection(database_url, db):
    cache = KeyCache(database_url, ttl_s=300)
    notifications = JobNotifications(cache)
    before = await _other_backends(db)
    await cache.start()
    try:
        assert await _other_backends(db) == before + 1, "one connection listens on the keys, jobs and batches"
        job_id, batch_id = str(uuid.uuid4()), str(uuid.uuid4())
        async with notifications.watch(job_id) as job_changed, notifications.watch(batch_id) as batch_changed:
            await notify(db, CHANNEL, job_id)
            await asyncio.wait_for(job_changed.wait(), 1.0)
            assert not batch_changed.is_set()
            await notify(db, BATCH_CHANNEL, batch_id)
            await asyncio.wait_for(batch_changed.wait(), 1.0)
    finally:
        await notifications.close()
        await cache.stop()


async def test_job_notifications_come_back_when_the_lost_connection_is_back(database_url, db):
    cache = KeyCache(database_url, ttl_s=300)
    notifications = JobNotifications(cache)
    await cache.start()
    try:
        assert await terminate_listener(db) == 1
        await until(lambda: not cache.listening, 2.0)
        await until(lambda: cache.listening, 3.0)
        job_id = str(uuid.uuid4())
        async with notifications.watch(job_id) as changed:
            await notify(db, CHANNEL, job_id)
            await asyncio.wait_for(changed.wait(), 1.0)
    finally:
        await notifications.close()
        await cache.stop()
