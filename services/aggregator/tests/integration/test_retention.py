"""Retention against real Postgres and real blob stores: old jobs, their objects and rows go; young ones stay."""

import asyncio
import functools
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from pixtools_aggregator.adapters.retention import retention_transaction
from pixtools_aggregator.retention import Deleted, RetentionCleaner, RetentionPolicy, clean_up
from pixtools_db import (
    Batch,
    Inbox,
    Job,
    Lease,
    Outbox,
    Output,
    PostgresLease,
    Step,
    WebhookDelivery,
    acquire_lease,
    release_lease,
    renew_lease,
)
from pixtools_platform.blobstore import LocalBlobStore

from .retention_seed import count, seed_batch, seed_job, stored

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=30)
YOUNG = NOW - timedelta(days=1)
POLICY = RetentionPolicy(max_age=timedelta(days=7), outbox_max_age=timedelta(days=1), chunk=2)


@pytest.fixture(params=["local", "s3"])
def store(request):
    return request.getfixturevalue("local_store" if request.param == "local" else "s3_store")


def cleanup_of(sessions, store, policy=POLICY, **options):
    return functools.partial(
        clean_up,
        transactions=functools.partial(retention_transaction, sessions),
        blobs=store,
        policy=policy,
        now=NOW,
        **options,
    )


def cleaner(sessions, store, lease_name, holder, policy=POLICY) -> RetentionCleaner:
    return RetentionCleaner(
        transactions=functools.partial(retention_transaction, sessions),
        blobs=store,
        lease=PostgresLease(sessions, name=lease_name, holder=holder, ttl=timedelta(minutes=1)),
        policy=policy,
        interval_s=3600,
        clock=lambda: NOW,
    )


async def test_old_jobs_lose_every_object_under_their_folder_and_their_rows_while_young_jobs_stay(sessions, db, store):
    tenant_id, _ = await db.tenant()
    old = [await seed_job(sessions, store, tenant_id, OLD) for _ in range(3)]
    young = await seed_job(sessions, store, tenant_id, YOUNG)

    deleted = await cleanup_of(sessions, store)()

    assert deleted == Deleted(jobs=3, objects=9)
    old_ids = [job.id for job in old]
    assert await count(sessions, Job, Job.id.in_(old_ids)) == 0
    assert await count(sessions, Step, Step.job_id.in_(old_ids)) == 0
    assert await count(sessions, Output, Output.job_id.in_(old_ids)) == 0
    assert await count(sessions, WebhookDelivery, WebhookDelivery.job_id.in_(old_ids)) == 0
    assert not any([await stored(store, key) for job in old for key in job.keys])
    assert await count(sessions, Step, Step.job_id == young.id) == 2
    assert await count(sessions, Output, Output.job_id == young.id) == 1
    assert all([await stored(store, key) for key in young.keys])


async def test_old_batches_go_once_their_jobs_and_objects_are_gone(sessions, db, local_store):
    tenant_id, _ = await db.tenant()
    finished_batch = await seed_batch(sessions, tenant_id, OLD)
    batch_jobs = [await seed_job(sessions, local_store, tenant_id, OLD, batch_id=finished_batch) for _ in range(3)]
    batch_with_a_young_job = await seed_batch(sessions, tenant_id, OLD)
    young_job = await seed_job(sessions, local_store, tenant_id, YOUNG, batch_id=batch_with_a_young_job)
    young_batch = await seed_batch(sessions, tenant_id, YOUNG)

    deleted = await cleanup_of(sessions, local_store)()

    assert deleted == Deleted(jobs=3, objects=9, batches=1)
    assert await count(sessions, Batch, Batch.id == finished_batch) == 0
    assert not any([await stored(local_store, key) for job in batch_jobs for key in job.keys])
    assert await count(sessions, Batch, Batch.id.in_([batch_with_a_young_job, young_batch])) == 2
    assert await count(sessions, Job, Job.id == young_job.id) == 1


async def test_old_inbox_rows_and_long_published_outbox_rows_go_while_pending_rows_stay(sessions, local_store):
    consumer = f"test-{secrets.token_hex(4)}"
    async with sessions.begin() as session:
        for processed_at in (OLD, OLD, OLD, YOUNG):
            session.add(Inbox(consumer=consumer, event_id=uuid.uuid4(), processed_at=processed_at))
        outbox = {
            "published two days ago": (OLD, NOW - timedelta(days=2)),
            "published long ago": (OLD, OLD),
            "published an hour ago": (OLD, NOW - timedelta(hours=1)),
            "never published": (OLD, None),
        }
        for name, (created_at, published_at) in outbox.items():
            session.add(
                Outbox(
                    event_id=uuid.uuid4(), event_type="test", routing_key=name, body=b"{}", headers={},
                    created_at=created_at, published_at=published_at,
                )
            )  # fmt: skip

    deleted = await cleanup_of(sessions, local_store)()

    assert deleted == Deleted(inbox=3, outbox=2)
    assert await count(sessions, Inbox, Inbox.consumer == consumer) == 1
    async with sessions() as session:
        kept = set(await session.scalars(select(Outbox.routing_key).where(Outbox.routing_key.in_(outbox))))
    assert kept == {"published an hour ago", "never published"}


async def test_two_cleanups_at_once_delete_every_job_and_object_exactly_once(sessions, db, local_store):
    tenant_id, _ = await db.tenant()
    old = [await seed_job(sessions, local_store, tenant_id, OLD) for _ in range(9)]
    run = cleanup_of(sessions, local_store)

    first, second = await asyncio.gather(run(), run())

    assert first.jobs + second.jobs == 9
    assert first.objects + second.objects == 27
    assert await count(sessions, Job, Job.id.in_([job.id for job in old])) == 0


async def test_two_replicas_at_once_share_one_lease_and_delete_everything_once(sessions, db, local_store):
    tenant_id, _ = await db.tenant()
    old = [await seed_job(sessions, local_store, tenant_id, OLD) for _ in range(5)]
    lease_name = f"test-retention-{secrets.token_hex(4)}"

    results = await asyncio.gather(
        cleaner(sessions, local_store, lease_name, "replica-a").run_once(),
        cleaner(sessions, local_store, lease_name, "replica-b").run_once(),
    )

    ran = [result for result in results if result is not None]
    assert ran
    assert sum(result.jobs for result in ran) == 5
    assert sum(result.objects for result in ran) == 15
    assert await count(sessions, Job, Job.id.in_([job.id for job in old])) == 0
    assert await count(sessions, Lease, Lease.name == lease_name) == 0


async def test_a_lease_has_one_holder_until_it_is_released_or_expires(sessions):
    name = f"test-lease-{secrets.token_hex(4)}"
    ttl = timedelta(minutes=5)

    assert await acquire_lease(sessions, name=name, holder="a", ttl=ttl)
    assert not await acquire_lease(sessions, name=name, holder="b", ttl=ttl)
    assert await acquire_lease(sessions, name=name, holder="a", ttl=ttl)
    assert await renew_lease(sessions, name=name, holder="a", ttl=ttl)
    assert not await renew_lease(sessions, name=name, holder="b", ttl=ttl)
    assert not await release_lease(sessions, name=name, holder="b")

    assert await release_lease(sessions, name=name, holder="a")
    assert await acquire_lease(sessions, name=name, holder="b", ttl=ttl)
    assert not await acquire_lease(sessions, name=name, holder="a", ttl=ttl)

    # Holder b dies without releasing: once its lease has expired, a takes over and b can no longer renew.
    async with sessions.begin() as session:
        await session.execute(update(Lease).where(Lease.name == name).values(expires_at=func.now() - ttl))
    assert await acquire_lease(sessions, name=name, holder="a", ttl=ttl)
    assert not await renew_lease(sessions, name=name, holder="b", ttl=ttl)
    async with sessions() as session:
        assert await session.scalar(select(Lease.holder).where(Lease.name == name)) == "a"
    await release_lease(sessions, name=name, holder="a")


async def test_a_replica_without_the_lease_skips_its_turn(sessions, db, local_store):
    tenant_id, _ = await db.tenant()
    job = await seed_job(sessions, local_store, tenant_id, OLD)
    lease_name = f"test-retention-{secrets.token_hex(4)}"
    await acquire_lease(sessions, name=lease_name, holder="elsewhere", ttl=timedelta(minutes=5))

    assert await cleaner(sessions, local_store, lease_name, "here").run_once() is None
    assert await count(sessions, Job, Job.id == job.id) == 1

    await release_lease(sessions, name=lease_name, holder="elsewhere")
    assert await cleaner(sessions, local_store, lease_name, "here").run_once() == Deleted(jobs=1, objects=3)


async def test_a_cleanup_told_to_stop_finishes_its_chunk_and_leaves_the_rest_for_the_next_run(
    sessions, db, local_store
):
    tenant_id, _ = await db.tenant()
    old = [await seed_job(sessions, local_store, tenant_id, OLD) for _ in range(5)]

    async def stop() -> bool:
        return False

    assert await cleanup_of(sessions, local_store, keep_going=stop)() == Deleted(jobs=2, objects=6)
    assert await count(sessions, Job, Job.id.in_([job.id for job in old])) == 3

    assert await cleanup_of(sessions, local_store)() == Deleted(jobs=3, objects=9)


async def test_each_run_logs_and_counts_what_it_deleted(sessions, db, local_store, caplog, metric_value):
    tenant_id, _ = await db.tenant()
    for _ in range(3):
        await seed_job(sessions, local_store, tenant_id, OLD)
    jobs_before = metric_value("pixtools_retention_deleted_total", kind="jobs")
    objects_before = metric_value("pixtools_retention_deleted_total", kind="objects")
    caplog.set_level(logging.INFO, logger="pixtools_aggregator.retention")

    await cleaner(sessions, local_store, f"test-retention-{secrets.token_hex(4)}", "replica").run_once()

    [record] = [record for record in caplog.records if record.getMessage() == "retention cleanup"]
    assert (record.jobs, record.objects, record.batches, record.inbox, record.outbox) == (3, 9, 0, 0, 0)
    assert metric_value("pixtools_retention_deleted_total", kind="jobs") == jobs_before + 3
    assert metric_value("pixtools_retention_deleted_total", kind="objects") == objects_before + 9


async def test_the_running_service_deletes_expired_jobs_from_its_blob_store(
    sessions, db, start_aggregator, wait_until, tmp_path
):
    blobs = LocalBlobStore(tmp_path / "blobs")
    tenant_id, _ = await db.tenant()
    old = await seed_job(sessions, blobs, tenant_id, NOW - timedelta(days=8))
    young = await seed_job(sessions, blobs, tenant_id, NOW - timedelta(days=6))

    await start_aggregator(blob_dir=tmp_path / "blobs", retention_interval_s=3600)

    async def old_job_gone() -> bool:
        return await count(sessions, Job, Job.id == old.id) == 0

    await wait_until(old_job_gone)
    assert not any([await stored(blobs, key) for key in old.keys])
    assert await count(sessions, Job, Job.id == young.id) == 1
    assert all([await stored(blobs, key) for key in young.keys])


async def test_an_old_job_that_finished_or_changed_recently_is_kept(sessions, db, local_store):
    tenant_id, _ = await db.tenant()
    expired, retried, running = [await seed_job(sessions, local_store, tenant_id, OLD) for _ in range(3)]
    async with sessions.begin() as session:  # retried and finished yesterday; still running and changed yesterday
        await session.execute(update(Job).where(Job.id == retried.id).values(finished_at=YOUNG))
        await session.execute(
            update(Job).where(Job.id == running.id).values(state="running", finished_at=None, updated_at=YOUNG)
        )

    async with retention_transaction(sessions) as repository:
        locked = await repository.lock_expired_jobs(created_before=NOW - timedelta(days=7), limit=10_000)

    ids = {job.job_id for job in locked}
    assert expired.id in ids
    assert not {retried.id, running.id} & ids
