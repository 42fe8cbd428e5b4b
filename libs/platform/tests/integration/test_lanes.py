"""Bulk lane on a real broker: a batch's backlog cannot hold up a single job, and bulk retries stay bulk."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection

from pixtools_contracts import Event, Lane
from pixtools_platform.broker import PermanentError, Publisher, Topology, connect
from pixtools_platform.lanes import current_lane

from .stage_fixtures import SERVICE, queue_length, stage_settings, stage_worker, step_request, take_messages, wait_until

pytestmark = pytest.mark.integration

BULK_PREFETCH = 2


@pytest_asyncio.fixture
async def broker(infra, namespace) -> AsyncIterator[tuple[AbstractRobustConnection, Publisher]]:
    connection = await connect(infra.amqp_url, "test")
    publisher = await Publisher.open(connection, Topology(namespace))
    yield connection, publisher
    await publisher.close()
    await connection.close()


async def test_single_job_is_handled_while_a_batch_backlog_holds_the_bulk_lane(
    infra, namespace, tmp_path, broker
) -> None:
    connection, publisher = broker
    gate = asyncio.Event()
    order: list[tuple[Lane, uuid.UUID]] = []
    bulk_running = 0
    most_bulk_running = 0

    async def slow_bulk(event: Event) -> Sequence[Event]:
        nonlocal bulk_running, most_bulk_running
        lane = current_lane.get()
        order.append((lane, event.job_id))
        if lane == "bulk":
            bulk_running += 1
            most_bulk_running = max(most_bulk_running, bulk_running)
            await gate.wait()
            bulk_running -= 1
        return []

    settings = stage_settings(infra, namespace, tmp_path, bulk_prefetch=BULK_PREFETCH, prefetch=8)
    worker = stage_worker(settings, slow_bulk)
    await worker.start()
    batch = [step_request(lane="bulk") for _ in range(50)]
    single = step_request()
    try:
        for request in batch:
            await publisher.publish(request)
        await wait_until(lambda: len(order) == BULK_PREFETCH)
        await publisher.publish(single)
        await wait_until(lambda: ("interactive", single.job_id) in order)
        gate.set()
        await wait_until(lambda: len(order) == len(batch) + 1)
    finally:
        gate.set()
        await worker.stop()
    position = order.index(("interactive", single.job_id))
    assert position == BULK_PREFETCH, f"the single job waited behind {position} batch items"
    assert [job_id for lane, job_id in order if lane == "bulk"] == [request.job_id for request in batch]
    assert most_bulk_running == BULK_PREFETCH
    topology = Topology(namespace)
    assert await queue_length(connection, topology.queue(f"{SERVICE}.bulk")) == 0
    assert await queue_length(connection, topology.queue(SERVICE)) == 0


async def test_bulk_retries_return_to_the_bulk_lane_and_its_dead_letters_to_its_own_queue(
    infra, namespace, tmp_path, broker
) -> None:
    connection, publisher = broker
    flaky, poison = step_request(lane="bulk"), step_request(lane="bulk")
    attempts: list[tuple[Lane, uuid.UUID]] = []

    async def fail_once(event: Event) -> Sequence[Event]:
        attempts.append((current_lane.get(), event.job_id))
        if event.job_id == poison.job_id:
            raise PermanentError("never works")
        if attempts.count(("bulk", flaky.job_id)) == 1:
            raise ConnectionError("storage blinked")
        return []

    worker = stage_worker(stage_settings(infra, namespace, tmp_path), fail_once)
    await worker.start()
    topology = Topology(namespace)
    try:
        await publisher.publish(flaky)
        await publisher.publish(poison)
        dead = await take_messages(connection, topology.dead_letter_queue(f"{SERVICE}.bulk"))
        await wait_until(lambda: attempts.count(("bulk", flaky.job_id)) == 2)
    finally:
        await worker.stop()
    assert attempts.count(("bulk", flaky.job_id)) == 2
    assert ("interactive", flaky.job_id) not in attempts
    assert len(dead) == 1
    headers = dead[0].headers or {}
    assert headers["x-death-service"] == f"{SERVICE}.bulk"
    assert headers["x-original-routing-key"] == "step.requested.v1.ingest.bulk"
    assert await queue_length(connection, topology.dead_letter_queue(SERVICE)) == 0
