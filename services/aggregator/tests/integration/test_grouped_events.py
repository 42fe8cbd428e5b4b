"""Step events that arrive together share one transaction: each job still ends once, in order, and a poison
event in a group costs the others nothing."""

import asyncio
import uuid
from typing import Any

import aio_pika
import pytest
from sqlalchemy import func, select

from pixtools_aggregator.routing import SERVICE
from pixtools_contracts import StepStarted
from pixtools_db import Inbox, Output, Step, WebhookDelivery
from pixtools_platform.broker import Topology

pytestmark = pytest.mark.integration

ONE_STEP = [{"op": "convert", "params": {"format": "webp"}}]
TWO_STEPS = [{"op": "resize", "params": {"width": 64}}, {"op": "convert", "params": {"format": "webp"}}]


def group_sizes(metric_value: Any, outcome: str) -> tuple[float, float]:
    """(groups, events in them) the consumer has handled with this outcome so far."""
    labels = {"service": SERVICE, "outcome": outcome}
    return metric_value("pixtools_group_size_count", **labels), metric_value("pixtools_group_size_sum", **labels)


async def test_events_waiting_together_are_applied_in_shared_transactions_and_each_job_ends_once(
    parked_queue, start_aggregator, publisher, db, terminal_events, metric_value, wait_until
):
    jobs = [await db.job(ONE_STEP, webhook_url="http://127.0.0.1:9/hook") for _ in range(40)]
    await asyncio.gather(*(publisher.publish(job.completed("0")) for job in jobs))
    groups_before, events_before = group_sizes(metric_value, "acked")

    await start_aggregator()
    published = await terminal_events.collect([job.id for job in jobs])

    assert {job_id: [event.state for event in copies] for job_id, copies in published.items()} == {
        job.id: ["succeeded"] for job in jobs
    }
    groups, events = group_sizes(metric_value, "acked")
    assert events - events_before == 40
    assert groups - groups_before < 40, "every event had a transaction of its own"
    job_ids = [job.id for job in jobs]
    await wait_until(lambda: db.outbox_emptied(job_ids))
    assert set((await db.rows_per_job(Output, job_ids)).values()) == {1}
    assert set((await db.rows_per_job(WebhookDelivery, job_ids)).values()) == {1}


async def test_a_jobs_events_in_one_group_apply_in_the_order_they_arrived(
    parked_queue, start_aggregator, publisher, db, metric_value, wait_until
):
    jobs = [await db.job(TWO_STEPS) for _ in range(12)]
    started = {job.id: job.started("0") for job in jobs}
    for job in jobs:
        await publisher.publish(started[job.id])
        await publisher.publish(job.completed("0"))
        await publisher.publish(job.completed("1"))
    _, events_before = group_sizes(metric_value, "acked")

    await start_aggregator()
    await wait_until(lambda: db.all_in_state([job.id for job in jobs], "succeeded"))

    async def all_acked_in_groups() -> bool:
        # Counted after the acks, a moment after the commit that the states above show.
        return group_sizes(metric_value, "acked")[1] - events_before == 36

    await wait_until(all_acked_in_groups)
    for job in jobs:
        # Had the completion been applied first, the step would keep the completion's started_at.
        assert (await db.steps(job.id))["0"].started_at == started[job.id].occurred_at


async def test_a_poison_event_in_a_group_is_dead_lettered_alone_and_the_rest_apply(
    parked_queue, start_aggregator, publisher, db, infra, namespace, metric_value, wait_until
):
    jobs = [await db.job(ONE_STEP) for _ in range(10)]
    stray = StepStarted(
        step_id="0", op="convert", job_id=uuid.uuid4(), tenant_id=uuid.uuid4(), correlation_id="c", producer="ingest"
    )
    for job in jobs[:5]:
        await publisher.publish(job.completed("0"))
    await publisher.publish(stray)
    for job in jobs[5:]:
        await publisher.publish(job.completed("0"))
    failed_before, _ = group_sizes(metric_value, "failed")

    await start_aggregator()
    await wait_until(lambda: db.all_in_state([job.id for job in jobs], "succeeded"))

    assert group_sizes(metric_value, "failed")[0] > failed_before
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(Topology(namespace).dead_letter_queue(SERVICE), passive=True)
        dead = None
        for _ in range(200):
            dead = await queue.get(fail=False, no_ack=True)
            if dead is not None:
                break
            await asyncio.sleep(0.05)
        assert dead is not None
        assert str(stray.job_id) in str(dead.headers["x-death-reason"])
        assert await queue.get(fail=False, no_ack=True) is None, "only the poison event is dead-lettered"
    finally:
        await connection.close()
    assert set((await db.rows_per_job(Output, [job.id for job in jobs])).values()) == {1}


async def test_copies_of_one_event_in_a_group_apply_once(
    parked_queue, start_aggregator, publisher, db, terminal_events, metric_value, wait_until
):
    jobs = [await db.job(ONE_STEP) for _ in range(6)]
    copied = jobs[0].completed("0")
    await publisher.publish(copied)
    for job in jobs[1:]:
        await publisher.publish(job.completed("0"))
    await publisher.publish(copied)
    duplicates_before = metric_value("pixtools_aggregator_events_total", type="step.completed.v1", outcome="duplicate")

    await start_aggregator()
    await wait_until(lambda: db.all_in_state([job.id for job in jobs], "succeeded"))

    async def duplicate_seen() -> bool:
        now = metric_value("pixtools_aggregator_events_total", type="step.completed.v1", outcome="duplicate")
        return now == duplicates_before + 1

    await wait_until(duplicate_seen)
    job_ids = [job.id for job in jobs]
    # The relays delete an outbox row once its event is confirmed, so the terminal events are counted as heard.
    published = await terminal_events.collect(job_ids)
    assert {job_id: len(copies) for job_id, copies in published.items()} == {job_id: 1 for job_id in job_ids}
    assert set((await db.rows_per_job(Output, job_ids)).values()) == {1}
    async with db.sessions() as session:
        claimed = await session.scalar(select(func.count()).select_from(Inbox).where(Inbox.event_id == copied.event_id))
        steps = await session.scalars(select(Step.state).where(Step.job_id.in_(job_ids)))
        assert claimed == 1
        assert set(steps) == {"succeeded"}


async def test_an_output_that_existed_before_its_step_succeeded_is_the_one_the_job_lists(
    parked_queue, start_aggregator, publisher, db, terminal_events, metric_value
):
    # The state machine never lets this happen (a step's outputs are added when it succeeds, once); a group lists
    # final outputs from memory on that ground, and must fall back to what is stored when the ground is false.
    jobs = [await db.job(ONE_STEP) for _ in range(4)]
    stale = jobs[0]
    async with db.sessions.begin() as session:
        session.add(
            Output(
                job_id=stale.id, step_id="0", op="convert", name="image", role="image", is_final=True,
                key=f"jobs/{stale.id}/0/earlier", content_type="image/webp", bytes=1, sha256="e" * 64,
            )
        )  # fmt: skip
    for job in jobs:
        await publisher.publish(job.completed("0"))
    failed_before, _ = group_sizes(metric_value, "failed")

    await start_aggregator()
    published = await terminal_events.collect([job.id for job in jobs])

    assert {job_id: [event.state for event in copies] for job_id, copies in published.items()} == {
        job.id: ["succeeded"] for job in jobs
    }
    assert [output.key for output in published[stale.id][0].outputs] == [f"jobs/{stale.id}/0/earlier"]
    for job in jobs[1:]:
        assert [output.key for output in published[job.id][0].outputs] == [f"jobs/{job.id}/0/image"]
    assert group_sizes(metric_value, "failed")[0] > failed_before, "the stale output went unnoticed in its group"
    assert set((await db.rows_per_job(Output, [job.id for job in jobs])).values()) == {1}


async def test_a_step_without_a_result_stores_sql_null_and_one_with_a_result_stores_it(
    parked_queue, start_aggregator, publisher, db, wait_until
):
    plain, with_result = await db.job(ONE_STEP), await db.job(ONE_STEP)
    await publisher.publish(plain.completed("0"))
    await publisher.publish(with_result.completed("0", result={"faces": 2}))

    await start_aggregator()
    await wait_until(lambda: db.all_in_state([plain.id, with_result.id], "succeeded"))

    async with db.sessions() as session:
        stored = dict(
            (await session.execute(
                select(Step.job_id, Step.result.is_(None)).where(Step.job_id.in_([plain.id, with_result.id]))
            )).all()
        )  # fmt: skip
    assert stored == {plain.id: True, with_result.id: False}
    assert (await db.steps(with_result.id))["0"].result == {"faces": 2}
