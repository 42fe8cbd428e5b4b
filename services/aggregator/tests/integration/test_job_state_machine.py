"""The job state machine against real RabbitMQ and Postgres: step events in, job state and terminal events out."""

import asyncio

import pytest
from sqlalchemy import func, select

from pixtools_contracts import JobCompleted, JobFailed
from pixtools_db import Job, Output

pytestmark = pytest.mark.integration

FORK = [
    {"op": "resize", "params": {"width": 64}},
    {
        "parallel": [
            [{"op": "convert", "params": {"format": "webp", "quality": 80}}],
            [{"op": "convert", "params": {"format": "avif"}}],
            [{"op": "metadata"}],
        ]
    },
]
DEEP_FORK = [
    {"op": "resize", "params": {"width": 64}},
    {
        "parallel": [
            [{"op": "convert", "params": {"format": "webp"}}],
            [{"op": "resize", "params": {"width": 32}}, {"op": "convert", "params": {"format": "png"}}],
        ]
    },
]


async def job_state(db, job_id):
    return (await db.get(Job, job_id)).state


async def test_parallel_fan_in_completes_the_job_only_after_every_leaf(
    start_aggregator, publisher, db, terminal_events, wait_until
):
    await start_aggregator()
    job = await db.job(FORK)
    await publisher.publish(job.started("0"))
    await publisher.publish(job.completed("0"))
    await asyncio.gather(publisher.publish(job.completed("1.0.0")), publisher.publish(job.completed("1.1.0")))

    async def two_leaves_done():
        steps = await db.steps(job.id)
        return steps["1.0.0"].state == steps["1.1.0"].state == "succeeded"

    await wait_until(two_leaves_done)
    assert await job_state(db, job.id) == "running"

    await publisher.publish(job.completed("1.2.0", result={"format": "JPEG", "width": 64}))
    event = await terminal_events.next_for(job.id)

    assert isinstance(event, JobCompleted)
    assert event.state == "succeeded"
    assert event.producer == "aggregator"
    assert event.correlation_id == f"corr-{job.id}"
    assert [(output.step_id, output.name) for output in event.outputs] == [
        ("1.0.0", "image"),
        ("1.1.0", "image"),
        ("1.2.0", "image"),
        ("1.2.0", "metadata"),
    ]
    assert event.results == {"1.2.0": {"format": "JPEG", "width": 64}}
    stored = await db.get(Job, job.id)
    assert stored.state == "succeeded"
    assert stored.started_at is not None
    assert stored.finished_at is not None


async def test_leaves_finishing_at_the_same_moment_finish_the_job_exactly_once(
    start_aggregator, publisher, db, terminal_events, wait_until
):
    await start_aggregator()
    branches = [[{"op": "convert", "params": {"format": "webp", "quality": q}}] for q in range(50, 58)]
    job = await db.job([{"op": "resize", "params": {"width": 64}}, {"parallel": branches}])
    await publisher.publish(job.completed("0"))
    await wait_until(lambda: _step_state_is(db, job.id, "0", "succeeded"))

    await asyncio.gather(*(publisher.publish(job.completed(f"1.{b}.0")) for b in range(8)))

    # Every terminal event heard, copies included: the relays delete an outbox row once its event is confirmed.
    [event] = (await terminal_events.collect([job.id]))[job.id]
    assert isinstance(event, JobCompleted)
    assert len(event.outputs) == 8


async def test_partial_failure_keeps_the_successful_outputs_and_lists_the_error(
    start_aggregator, publisher, db, terminal_events
):
    await start_aggregator()
    job = await db.job(DEEP_FORK)
    await publisher.publish(job.completed("0"))
    await publisher.publish(job.failed("1.1.0", code="image.too_large"))
    await publisher.publish(job.completed("1.0.0"))

    event = await terminal_events.next_for(job.id)

    assert isinstance(event, JobCompleted)
    assert event.state == "partially_failed"
    assert [output.step_id for output in event.outputs] == ["1.0.0"]
    assert [(error.step_id, error.error.code) for error in event.errors] == [("1.1.0", "image.too_large")]
    steps = await db.steps(job.id)
    assert (steps["1.1.1"].state, steps["1.1.1"].error_code) == ("skipped", "upstream_failed")
    assert await job_state(db, job.id) == "partially_failed"


async def test_job_whose_every_leaf_failed_publishes_job_failed(start_aggregator, publisher, db, terminal_events):
    await start_aggregator()
    job = await db.job(FORK)
    await publisher.publish(job.failed("0"))

    event = await terminal_events.next_for(job.id)

    assert isinstance(event, JobFailed)
    assert [error.step_id for error in event.errors] == ["0"]
    steps = await db.steps(job.id)
    assert {steps[leaf].state for leaf in ("1.0.0", "1.1.0", "1.2.0")} == {"skipped"}
    assert await job_state(db, job.id) == "failed"


async def test_duplicate_event_id_is_applied_once(
    start_aggregator, publisher, db, terminal_events, metric_value, wait_until
):
    await start_aggregator()
    job = await db.job([{"op": "convert", "params": {"format": "webp"}}])
    completed = job.completed("0")
    duplicates_before = metric_value("pixtools_aggregator_events_total", type="step.completed.v1", outcome="duplicate")

    await publisher.publish(completed)
    await publisher.publish(completed)

    async def duplicate_seen():
        now = metric_value("pixtools_aggregator_events_total", type="step.completed.v1", outcome="duplicate")
        return now == duplicates_before + 1

    await wait_until(duplicate_seen)
    assert len((await terminal_events.collect([job.id]))[job.id]) == 1
    async with db.sessions() as session:
        outputs = await session.scalar(select(func.count()).select_from(Output).where(Output.job_id == job.id))
    assert outputs == 1


async def test_late_started_after_completed_changes_nothing(start_aggregator, publisher, db, metric_value, wait_until):
    await start_aggregator()
    job = await db.job([{"op": "resize", "params": {"width": 10}}, {"op": "metadata"}])
    completed = job.completed("0")
    await publisher.publish(completed)
    await wait_until(lambda: _step_state_is(db, job.id, "0", "succeeded"))
    unchanged_before = metric_value("pixtools_aggregator_events_total", type="step.started.v1", outcome="unchanged")

    await publisher.publish(job.started("0"))

    async def late_start_handled():
        now = metric_value("pixtools_aggregator_events_total", type="step.started.v1", outcome="unchanged")
        return now == unchanged_before + 1

    await wait_until(late_start_handled)
    step = (await db.steps(job.id))["0"]
    assert step.state == "succeeded"
    assert step.started_at == completed.started_at
    assert await job_state(db, job.id) == "running"


async def test_results_arriving_after_the_job_finished_are_ignored(
    start_aggregator, publisher, db, terminal_events, metric_value, wait_until
):
    await start_aggregator()
    job = await db.job([{"op": "convert", "params": {"format": "webp"}}])
    await publisher.publish(job.completed("0"))
    await terminal_events.next_for(job.id)
    ignored_before = metric_value("pixtools_aggregator_events_total", type="step.failed.v1", outcome="ignored")

    await publisher.publish(job.failed("0"))

    async def late_failure_ignored():
        now = metric_value("pixtools_aggregator_events_total", type="step.failed.v1", outcome="ignored")
        return now == ignored_before + 1

    await wait_until(late_failure_ignored)
    assert (await db.steps(job.id))["0"].state == "succeeded"
    assert await job_state(db, job.id) == "succeeded"


async def _step_state_is(db, job_id, step_id, state):
    return (await db.steps(job_id))[step_id].state == state
