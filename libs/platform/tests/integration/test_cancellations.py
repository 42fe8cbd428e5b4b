"""Stages skip the queued work of cancelled jobs, on a real broker, learning cancellations from the stream."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import REGISTRY

from pixtools_contracts import Event, parse_event
from pixtools_platform.broker import Publisher, Topology, connect
from pixtools_platform.cancellations import CancelledJobs

from .stage_fixtures import (
    SERVICE,
    cancelled,
    next_request,
    queue_length,
    stage_settings,
    stage_worker,
    started,
    step_request,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def broker(infra, namespace) -> AsyncIterator[tuple[AbstractRobustConnection, Publisher]]:
    connection = await connect(infra.amqp_url, "test")
    publisher = await Publisher.open(connection, Topology(namespace))
    yield connection, publisher
    await publisher.close()
    await connection.close()


def _skipped() -> float:
    return REGISTRY.get_sample_value("pixtools_steps_skipped_total", {"service": SERVICE, "reason": "cancelled"}) or 0


async def _assert_queues_empty(connection: AbstractRobustConnection, namespace: str) -> None:
    """Every message was acked: none is back in the work queue (unacked ones return there) or dead-lettered."""
    topology = Topology(namespace)
    assert await queue_length(connection, topology.queue(SERVICE)) == 0
    assert await queue_length(connection, topology.dead_letter_queue(SERVICE)) == 0


async def test_replica_started_later_knows_every_earlier_cancellation_once_started(broker, namespace) -> None:
    connection, publisher = broker
    job_ids = [uuid.uuid4() for _ in range(300)]
    await asyncio.gather(*(publisher.publish(cancelled(job_id)) for job_id in job_ids))
    jobs = CancelledJobs(Topology(namespace), limit=10_000)
    try:
        caught_up = await jobs.start(connection, publisher, timeout_s=15)
        known = [job_id for job_id in job_ids if job_id in jobs]
    finally:
        await jobs.stop()
    assert caught_up
    assert len(known) == len(job_ids)
    assert uuid.uuid4() not in jobs


async def test_steps_of_a_job_cancelled_before_the_stage_started_are_acked_without_work(
    infra, namespace, tmp_path, broker
) -> None:
    connection, publisher = broker
    doomed, kept = step_request(), step_request()
    await publisher.publish(cancelled(doomed.job_id))
    handled: list[uuid.UUID] = []

    async def record(event: Event) -> Sequence[Event]:
        handled.append(event.job_id)
        return []

    worker = stage_worker(stage_settings(infra, namespace, tmp_path), record)
    skipped_before = _skipped()
    await worker.start()
    try:
        assert doomed.job_id in worker.cancelled, "the stage read the stream to its end before taking work"
        await publisher.publish(doomed)
        await publisher.publish(kept)
        await wait_until(lambda: kept.job_id in handled and _skipped() > skipped_before)
    finally:
        await worker.stop()
    assert handled == [kept.job_id]
    assert _skipped() == skipped_before + 1
    await _assert_queues_empty(connection, namespace)


async def test_cancellation_published_while_the_stage_runs_skips_later_steps(
    infra, namespace, tmp_path, broker
) -> None:
    connection, publisher = broker
    doomed, kept = step_request(lane="bulk"), step_request()
    handled: list[uuid.UUID] = []

    async def record(event: Event) -> Sequence[Event]:
        handled.append(event.job_id)
        return []

    worker = stage_worker(stage_settings(infra, namespace, tmp_path), record)
    await worker.start()
    try:
        await publisher.publish(cancelled(doomed.job_id))
        await wait_until(lambda: doomed.job_id in worker.cancelled)
        skipped_before = _skipped()
        await publisher.publish(doomed)
        await publisher.publish(kept)
        await wait_until(lambda: kept.job_id in handled and _skipped() > skipped_before)
    finally:
        await worker.stop()
    assert handled == [kept.job_id]
    await _assert_queues_empty(connection, namespace)
    assert await queue_length(connection, Topology(namespace).queue(f"{SERVICE}.bulk")) == 0


async def test_job_cancelled_while_its_step_runs_requests_no_next_step_but_reports_the_outcome(
    infra, namespace, tmp_path, broker
) -> None:
    connection, publisher = broker
    topology = Topology(namespace)
    channel = await connection.channel()
    observer = await channel.declare_queue(exclusive=True)
    for key in ("step.requested.v1.detect", "step.started.v1"):
        await observer.bind(topology.events, routing_key=key)
    doomed, kept = step_request(), step_request()
    entered, proceed = asyncio.Event(), asyncio.Event()

    async def hold_doomed(event: Event) -> Sequence[Event]:
        assert isinstance(event, type(doomed))
        if event.job_id == doomed.job_id:
            entered.set()
            await proceed.wait()
        return [next_request(event), started(event)]

    worker = stage_worker(stage_settings(infra, namespace, tmp_path), hold_doomed)
    await worker.start()
    seen: list[tuple[str, uuid.UUID]] = []

    async def observe_until(last: tuple[str, uuid.UUID]) -> None:
        while last not in seen:
            message = await observer.get(fail=False)
            if message is None:
                await asyncio.sleep(0.02)
                continue
            await message.ack()
            seen.append((message.routing_key or "", parse_event(message.body).job_id))

    try:
        await publisher.publish(doomed)
        await asyncio.wait_for(entered.wait(), 15)
        await publisher.publish(cancelled(doomed.job_id))
        await wait_until(lambda: doomed.job_id in worker.cancelled)
        proceed.set()
        await asyncio.wait_for(observe_until(("step.started.v1", doomed.job_id)), 15)
        await publisher.publish(kept)
        await asyncio.wait_for(observe_until(("step.started.v1", kept.job_id)), 15)
    finally:
        await worker.stop()
        await channel.close()
    # A stage confirms a step's commands before its notifications, so a command for the doomed job
    # would have arrived ahead of its notification.
    assert seen == [
        ("step.started.v1", doomed.job_id),
        ("step.requested.v1.detect", kept.job_id),
        ("step.started.v1", kept.job_id),
    ]
    await _assert_queues_empty(connection, namespace)
