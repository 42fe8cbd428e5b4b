"""Source fetch outcomes, cancellations and batch settling against real RabbitMQ and Postgres."""

import asyncio
import json
from datetime import UTC, datetime

import aio_pika
import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from pixtools_aggregator.adapters.jobs import SqlJobRepository
from pixtools_aggregator.handlers import Dependencies, apply_step_completed
from pixtools_contracts import JobFailed
from pixtools_db import Batch, Job, Output, WebhookDelivery
from pixtools_platform.broker import Topology

pytestmark = pytest.mark.integration

ONE_STEP = [{"op": "convert", "params": {"format": "webp"}}]
TWO_STEPS = [{"op": "resize", "params": {"width": 64}}, {"op": "convert", "params": {"format": "webp"}}]
NOWHERE = "http://127.0.0.1:9/hook"


async def handled(metric_value, wait_until, event_type, outcome, before):
    """Wait until the service counted one more event of `event_type` with `outcome`."""

    async def counted():
        return metric_value("pixtools_aggregator_events_total", type=event_type, outcome=outcome) >= before + 1

    await wait_until(counted)


def count_of(metric_value, event_type, outcome):
    return metric_value("pixtools_aggregator_events_total", type=event_type, outcome=outcome)


async def deliveries(db, **where):
    async with db.sessions() as session:
        query = select(WebhookDelivery)
        for column, value in where.items():
            query = query.where(getattr(WebhookDelivery, column) == value)
        return list(await session.scalars(query))


async def test_source_fetched_records_the_input_and_a_duplicate_changes_nothing(
    start_aggregator, publisher, db, metric_value, wait_until
):
    await start_aggregator()
    job = await db.job(TWO_STEPS, source_url="https://images.example/cat.jpg")
    fetched = job.fetched()

    await publisher.publish(fetched)

    async def recorded():
        stored = await db.get(Job, job.id)
        return stored if stored.input_key is not None else None

    stored = await wait_until(recorded)
    assert (stored.input_key, stored.input_content_type, stored.input_bytes, stored.input_sha256) == (
        fetched.input.key,
        "image/png",
        4321,
        "d" * 64,
    )
    assert (stored.input_width, stored.input_height) == (640, 480)
    assert stored.state == "running"
    assert stored.started_at == fetched.occurred_at

    duplicates = count_of(metric_value, "source.fetched.v1", "duplicate")
    await publisher.publish(fetched)
    await handled(metric_value, wait_until, "source.fetched.v1", "duplicate", duplicates)
    again = await db.get(Job, job.id)
    assert (again.updated_at, again.started_at, again.state) == (stored.updated_at, stored.started_at, "running")


async def test_source_fetched_after_the_job_finished_still_records_the_input(
    start_aggregator, publisher, db, metric_value, wait_until
):
    await start_aggregator()
    job = await db.job(ONE_STEP, source_url="https://images.example/cat.jpg", state="succeeded")
    applied = count_of(metric_value, "source.fetched.v1", "applied")

    await publisher.publish(job.fetched())

    await handled(metric_value, wait_until, "source.fetched.v1", "applied", applied)
    stored = await db.get(Job, job.id)
    assert stored.input_key == f"originals/{job.tenant_id}/{job.id}"
    assert (stored.state, stored.started_at) == ("succeeded", None)


async def test_source_failed_fails_the_job_with_the_fetch_reason(start_aggregator, publisher, db, terminal_events):
    await start_aggregator()
    job = await db.job(TWO_STEPS, source_url="https://images.example/gone.jpg", webhook_url=NOWHERE)

    await publisher.publish(job.fetch_failed(code="fetch.http_status", message="HTTP 404"))
    event = await terminal_events.next_for(job.id)

    assert isinstance(event, JobFailed)
    assert [(error.step_id, error.op, error.error.code, error.error.message) for error in event.errors] == [
        ("source", "fetch", "fetch.http_status", "HTTP 404")
    ]
    stored = await db.get(Job, job.id)
    assert (stored.state, stored.error_code, stored.error_message) == ("failed", "fetch.http_status", "HTTP 404")
    assert stored.finished_at is not None
    steps = await db.steps(job.id)
    assert {(step.state, step.error_code) for step in steps.values()} == {("skipped", "source_failed")}
    assert all("fetch.http_status" in step.error_message for step in steps.values())
    [webhook] = await deliveries(db, job_id=job.id)
    assert webhook.event_type == "job.failed.v1"
    assert json.loads(webhook.payload)["data"]["errors"][0]["step_id"] == "source"


async def test_a_late_source_failure_after_the_original_was_stored_changes_nothing(
    start_aggregator, publisher, db, metric_value, wait_until
):
    await start_aggregator()
    job = await db.job(TWO_STEPS, source_url="https://images.example/cat.jpg")
    applied = count_of(metric_value, "source.fetched.v1", "applied")
    await publisher.publish(job.fetched())
    await handled(metric_value, wait_until, "source.fetched.v1", "applied", applied)
    ignored = count_of(metric_value, "source.failed.v1", "ignored")

    # A redelivered fetch command whose second attempt failed.
    await publisher.publish(job.fetch_failed(code="fetch.http_5xx", message="HTTP 503"))

    await handled(metric_value, wait_until, "source.failed.v1", "ignored", ignored)
    stored = await db.get(Job, job.id)
    assert (stored.state, stored.error_code) == ("running", None)
    assert {step.state for step in (await db.steps(job.id)).values()} == {"pending"}


async def test_source_failed_for_an_unknown_job_is_dead_lettered(start_aggregator, publisher, db, infra, namespace):
    await start_aggregator()
    job = await db.job(ONE_STEP, source_url="https://images.example/cat.jpg")
    async with db.sessions.begin() as session:
        await session.delete(await session.get(Job, job.id))

    await publisher.publish(job.fetch_failed())

    message = await _dead_letter(infra, namespace)
    assert str(job.id) in str(message.headers["x-death-reason"])


async def test_job_cancelled_queues_one_webhook_and_a_duplicate_none(
    start_aggregator, publisher, db, metric_value, wait_until
):
    await start_aggregator()
    job = await db.job(TWO_STEPS, webhook_url=NOWHERE, state="cancelled")
    cancelled = job.cancelled()
    duplicates = count_of(metric_value, "job.cancelled.v1", "duplicate")

    await publisher.publish(cancelled)
    await publisher.publish(cancelled)

    await handled(metric_value, wait_until, "job.cancelled.v1", "duplicate", duplicates)
    [webhook] = await deliveries(db, job_id=job.id)
    assert webhook.event_type == "job.cancelled.v1"
    payload = json.loads(webhook.payload)
    assert payload["type"] == "job.cancelled.v1"
    assert payload["data"]["event_id"] == str(cancelled.event_id)
    assert (await db.get(Job, job.id)).state == "cancelled"


async def test_job_cancelled_for_a_job_retried_since_sends_nothing(
    start_aggregator, publisher, db, metric_value, wait_until
):
    await start_aggregator()
    job = await db.job(ONE_STEP, webhook_url=NOWHERE, state="running")
    ignored = count_of(metric_value, "job.cancelled.v1", "ignored")

    await publisher.publish(job.cancelled())

    await handled(metric_value, wait_until, "job.cancelled.v1", "ignored", ignored)
    assert await deliveries(db, job_id=job.id) == []


async def test_late_step_completed_for_a_cancelled_job_is_ignored(
    start_aggregator, publisher, db, metric_value, wait_until
):
    await start_aggregator()
    job = await db.job(ONE_STEP, state="cancelled")
    ignored = count_of(metric_value, "step.completed.v1", "ignored")

    await publisher.publish(job.completed("0"))

    await handled(metric_value, wait_until, "step.completed.v1", "ignored", ignored)
    assert (await db.steps(job.id))["0"].state == "pending"
    assert (await db.get(Job, job.id)).state == "cancelled"
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Output).where(Output.job_id == job.id)) == 0


async def test_batch_finishes_with_its_last_job_and_sends_one_webhook(
    start_aggregator, publisher, db, metric_value, wait_until
):
    await start_aggregator()
    tenant = await db.tenant()
    batch_id = await db.batch(tenant, webhook_url=NOWHERE, state="accepted")
    first, second, third = [await db.job(ONE_STEP, tenant=tenant, batch_id=batch_id) for _ in range(3)]

    await publisher.publish(first.started("0"))
    await wait_until(lambda: _batch_state_is(db, batch_id, "running"))
    await publisher.publish(first.completed("0"))
    await publisher.publish(second.completed("0"))
    await wait_until(lambda: _job_state_is(db, second.id, "succeeded"))
    await wait_until(lambda: _job_state_is(db, first.id, "succeeded"))
    open_batch = await db.get(Batch, batch_id)
    assert (open_batch.state, open_batch.finished_at) == ("running", None)
    assert await deliveries(db, batch_id=batch_id) == []

    await publisher.publish(third.failed("0"))

    finished = await wait_until(lambda: _finished_batch(db, batch_id))
    assert finished.state == "partially_failed"
    [webhook] = await deliveries(db, batch_id=batch_id)
    assert (webhook.job_id, webhook.event_type, webhook.tenant_id) == (None, "batch.finished.v1", tenant[0])
    payload = json.loads(webhook.payload)
    assert payload["type"] == "batch.finished.v1"
    data = payload["data"]
    assert (data["type"], data["id"], data["batch_id"], data["state"]) == (
        "batch.finished.v1",
        str(webhook.id),
        str(batch_id),
        "partially_failed",
    )
    assert data["totals"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 2,
        "partially_failed": 0,
        "failed": 1,
        "cancelled": 0,
        "total": 3,
    }
    assert datetime.fromisoformat(data["finished_at"]) == finished.finished_at


async def test_batch_whose_every_job_failed_fetching_finishes_failed(start_aggregator, publisher, db, wait_until):
    await start_aggregator()
    tenant = await db.tenant()
    batch_id = await db.batch(tenant)
    jobs = [await db.job(ONE_STEP, tenant=tenant, batch_id=batch_id, source_url="https://x.example/a") for _ in "ab"]

    await asyncio.gather(*(publisher.publish(job.fetch_failed()) for job in jobs))

    finished = await wait_until(lambda: _finished_batch(db, batch_id))
    assert finished.state == "failed"
    assert await deliveries(db, batch_id=batch_id) == []


async def test_jobs_finishing_together_settle_their_batch_exactly_once(db, sessions, wait_until):
    tenant = await db.tenant()
    batch_id = await db.batch(tenant, webhook_url=NOWHERE)
    jobs = [await db.job(ONE_STEP, tenant=tenant, batch_id=batch_id, state="running") for _ in range(2)]
    # Both transactions finish their job before either locks the batch, and the first to check stays open until
    # the other has checked too or is queued on the batch's lock: without that lock neither would see a last job.
    both_finished = asyncio.Barrier(2)
    pids: list[int] = []
    checked: set[int] = set()

    async def checked_or_queued(pid):
        async with sessions() as session:
            waiting = await session.scalar(
                text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            )
        return pid in checked or waiting

    class Synchronised(SqlJobRepository):
        def __init__(self, session, pid):
            super().__init__(session)
            self.pid = pid

        async def lock_batch(self, batch_id):
            await both_finished.wait()
            return await super().lock_batch(batch_id)

        async def has_unfinished_jobs(self, batch_id):
            unfinished = await super().has_unfinished_jobs(batch_id)
            checked.add(self.pid)
            other = next(pid for pid in pids if pid != self.pid)
            await wait_until(lambda: checked_or_queued(other))
            return unfinished

    async def complete(job):
        async with sessions.begin() as session:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
            pids.append(pid)
            deps = Dependencies(jobs=Synchronised(session, pid), now=datetime.now(UTC))
            return await apply_step_completed(job.completed("0"), deps)

    applied = await asyncio.wait_for(asyncio.gather(*(complete(job) for job in jobs)), timeout=30)

    assert sorted(str(result.batch_finished) for result in applied) == ["None", "succeeded"]
    assert [result.webhook for result in applied].count(True) == 1
    finished = await db.get(Batch, batch_id)
    assert finished.state == "succeeded"
    assert finished.finished_at is not None
    assert len(await deliveries(db, batch_id=batch_id)) == 1


async def test_cancelled_batch_settles_as_cancelled(start_aggregator, publisher, db, wait_until):
    await start_aggregator()
    tenant = await db.tenant()
    batch_id = await db.batch(tenant, webhook_url=NOWHERE, state="cancelled", cancelled=True)
    done = await db.job(ONE_STEP, tenant=tenant, batch_id=batch_id, state="succeeded")
    cancelled = [await db.job(ONE_STEP, tenant=tenant, batch_id=batch_id, state="cancelled") for _ in "ab"]

    await asyncio.gather(*(publisher.publish(job.cancelled()) for job in cancelled))

    finished = await wait_until(lambda: _finished_batch(db, batch_id))
    assert finished.state == "cancelled"
    [webhook] = await wait_until(lambda: deliveries(db, batch_id=batch_id))
    totals = json.loads(webhook.payload)["data"]["totals"]
    assert (totals["succeeded"], totals["cancelled"], totals["total"]) == (1, 2, 3)
    assert (await db.get(Job, done.id)).state == "succeeded"


async def test_batch_progress_is_announced_on_the_batches_channel(start_aggregator, publisher, db, database_url):
    await start_aggregator()
    tenant = await db.tenant()
    batch_id = await db.batch(tenant)
    job = await db.job(ONE_STEP, tenant=tenant, batch_id=batch_id)
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(url)
    announced: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("pixtools_batches", lambda *args: announced.put_nowait(args[-1]))
    try:
        await publisher.publish(job.started("0"))
        started = await asyncio.wait_for(announced.get(), timeout=10)
        await publisher.publish(job.completed("0"))
        finished = await asyncio.wait_for(announced.get(), timeout=10)
    finally:
        await listener.close()
    assert started == finished == str(batch_id)


async def _job_state_is(db, job_id, state):
    return (await db.get(Job, job_id)).state == state


async def _batch_state_is(db, batch_id, state):
    return (await db.get(Batch, batch_id)).state == state


async def _finished_batch(db, batch_id):
    batch = await db.get(Batch, batch_id)
    return batch if batch.finished_at is not None else None


async def _dead_letter(infra, namespace):
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(Topology(namespace).dead_letter_queue("aggregator"), passive=True)
        for _ in range(200):
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                return message
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    raise AssertionError("nothing was dead-lettered")
