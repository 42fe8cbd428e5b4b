"""Delivery rules on a real RabbitMQ: retries with growing delays, dead letters with reasons, no crashes."""

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import aio_pika
import pytest
import pytest_asyncio

from pixtools_contracts import Event, StepStarted
from pixtools_platform.broker import Consumer, Grouping, PermanentError, Publisher, Topology, Unroutable, connect
from pixtools_platform.broker.topology import DELIVERY_LIMIT
from pixtools_testkit.fixtures import TEST_RETRY

pytestmark = pytest.mark.integration


def _event() -> StepStarted:
    return StepStarted(
        job_id=uuid.uuid4(), tenant_id=uuid.uuid4(), correlation_id="c", producer="test", step_id="0", op="resize"
    )


@pytest_asyncio.fixture
async def broker(infra, namespace) -> AsyncIterator[tuple[aio_pika.abc.AbstractRobustConnection, Publisher, Topology]]:
    connection = await connect(infra.amqp_url, "test")
    topology = Topology(namespace)
    publisher = await Publisher.open(connection, topology)
    yield connection, publisher, topology
    await publisher.close()
    await connection.close()


async def _start(broker, handler, service="ingest", prefetch=4) -> Consumer:
    connection, publisher, topology = broker
    consumer = Consumer(
        connection=connection,
        publisher=publisher,
        topology=topology,
        service=service,
        routing_keys=["step.started.v1"],
        handlers={"step.started.v1": handler},
        retry=TEST_RETRY,
        prefetch=prefetch,
    )
    await consumer.start()
    return consumer


async def _dead_letters(
    broker, service="ingest", expected=1, seconds=15.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection, _, topology = broker
    channel = await connection.channel()
    queue = await channel.get_queue(topology.dead_letter_queue(service))
    found = []
    deadline = time.monotonic() + seconds
    while len(found) < expected and time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        found.append(message)
    await channel.close()
    return found


async def test_transient_failure_is_retried_with_growing_delays_then_dead_lettered_with_reason(broker) -> None:
    attempts: list[float] = []

    async def always_failing(event: Event) -> Sequence[Event]:
        attempts.append(time.monotonic())
        raise ConnectionError("storage is down")

    consumer = await _start(broker, always_failing)
    await broker[1].publish(_event())
    [dead] = await _dead_letters(broker)
    await consumer.stop(5)

    assert len(attempts) == TEST_RETRY.max_attempts
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    tiers = [tier / 1000 for tier in TEST_RETRY.tiers_ms()]
    for gap, tier in zip(gaps, tiers, strict=True):
        # Each wait is the jittered share of its tier: at least (1 - jitter) of it, and not much more.
        assert tier * (1 - TEST_RETRY.jitter) - 0.05 <= gap <= tier + 1.0
    assert tiers[1] > tiers[0]
    headers = dead.headers or {}
    assert "storage is down" in str(headers["x-death-reason"])
    assert headers["x-attempt"] == TEST_RETRY.max_attempts
    assert headers["x-death-service"] == "ingest"


async def test_poison_message_is_dead_lettered_and_the_consumer_keeps_serving(broker) -> None:
    handled: list[Event] = []

    async def record(event: Event) -> Sequence[Event]:
        handled.append(event)
        return []

    consumer = await _start(broker, record)
    _, publisher, _ = broker
    for body in (b"not json at all", b'{"type": "step.started.v1", "job_id": "not-a-uuid"}', b'{"type": "nope.v9"}'):
        await publisher.publish_message("step.started.v1", aio_pika.Message(body))
    good = _event()
    await publisher.publish(good)
    dead = await _dead_letters(broker, expected=3)
    for _ in range(50):
        if handled:
            break
        await asyncio.sleep(0.1)
    await consumer.stop(5)
    assert [event.event_id for event in handled] == [good.event_id]
    reasons = sorted(str((message.headers or {})["x-death-reason"]) for message in dead)
    assert len(reasons) == 3
    assert all(reason.startswith("invalid message") for reason in reasons)
    assert any("unknown event type 'nope.v9'" in reason for reason in reasons)


async def test_permanent_error_is_dead_lettered_at_once(broker) -> None:
    calls = 0

    async def refuse(event: Event) -> Sequence[Event]:
        nonlocal calls
        calls += 1
        raise PermanentError("this can never work")

    consumer = await _start(broker, refuse)
    await broker[1].publish(_event())
    [dead] = await _dead_letters(broker)
    await consumer.stop(5)
    assert calls == 1
    assert (dead.headers or {})["x-death-reason"] == "this can never work"


async def test_handler_events_are_published_before_the_ack(broker) -> None:
    connection, publisher, topology = broker
    channel = await connection.channel()
    observer = await channel.declare_queue(exclusive=True)
    await observer.bind(topology.events, routing_key="job.cancelled.v1")
    source = _event()

    async def answer(event: Event) -> Sequence[Event]:
        from pixtools_contracts import JobCancelled

        return [JobCancelled(job_id=event.job_id, tenant_id=event.tenant_id, correlation_id="c", producer="test")]

    consumer = await _start(broker, answer)
    await publisher.publish(source)
    message = None
    for _ in range(50):
        message = await observer.get(fail=False)
        if message:
            break
        await asyncio.sleep(0.1)
    await consumer.stop(5)
    await channel.close()
    assert message is not None
    assert str(source.job_id) in message.body.decode()
    assert message.headers.get("traceparent"), "published events carry the trace context"


async def test_unroutable_publish_is_an_error(broker) -> None:
    _, publisher, _ = broker
    with pytest.raises(Unroutable):
        await publisher.publish_message("step.requested.v1.nobody", aio_pika.Message(b"{}"))


async def test_stop_drains_in_flight_work_before_closing(broker) -> None:
    finished: list[str] = []
    started = asyncio.Event()

    async def slow(event: Event) -> Sequence[Event]:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(str(event.event_id))
        return []

    consumer = await _start(broker, slow)
    await broker[1].publish(_event())
    await asyncio.wait_for(started.wait(), 10)
    await consumer.stop(drain_seconds=5)
    assert len(finished) == 1


async def test_message_redelivered_up_to_the_limit_is_given_up_with_its_step_reported(broker) -> None:
    connection, publisher, topology = broker
    channel = await connection.channel()
    queue = await topology.declare_service(channel, "ingest", ["step.started.v1"], TEST_RETRY)
    await publisher.publish(_event())
    # Nine deliveries that are never settled, as when a message crashes its worker every time.
    for _ in range(DELIVERY_LIMIT - 1):
        message = None
        for _ in range(50):
            message = await queue.get(fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.05)
        assert message is not None
        await message.nack(requeue=True)
    await channel.close()
    handled: list[Event] = []
    reported: list[str] = []

    async def record(event: Event) -> Sequence[Event]:
        handled.append(event)
        return []

    async def report(event: Event, reason: str) -> Sequence[Event]:
        reported.append(reason)
        return []

    consumer = Consumer(
        connection=connection,
        publisher=publisher,
        topology=topology,
        service="ingest",
        routing_keys=["step.started.v1"],
        handlers={"step.started.v1": record},
        retry=TEST_RETRY,
        prefetch=1,
        on_exhausted=report,
    )
    await consumer.start()
    [dead] = await _dead_letters(broker)
    await consumer.stop(5)
    assert handled == [], "the last delivery is not handed to a handler that keeps crashing"
    assert reported == [f"delivered {DELIVERY_LIMIT} times without being settled"]
    assert "without being settled" in str((dead.headers or {})["x-death-reason"])


async def test_outcome_is_not_published_when_a_next_step_request_is_unroutable(broker) -> None:
    from pixtools_contracts import JobCancelled, ObjectRef, Pipeline, StepRequested, first_steps, plan

    connection, publisher, topology = broker
    channel = await connection.channel()
    observer = await channel.declare_queue(exclusive=True)
    await observer.bind(topology.events, routing_key="job.cancelled.v1")
    [(step, rest)] = first_steps(plan(Pipeline.model_validate([{"op": "denoise"}])))
    source = _event()
    envelope = {"job_id": source.job_id, "tenant_id": source.tenant_id, "correlation_id": "c", "producer": "test"}
    request = StepRequested(
        **envelope,
        service="denoise",
        input=ObjectRef(key="k", content_type="image/png", bytes=1, sha256="0" * 64),
        step=step,
        remaining=rest,
    )
    with pytest.raises(Unroutable):
        await publisher.publish_all([request, JobCancelled(**envelope)])
    await asyncio.sleep(0.3)
    assert await observer.get(fail=False) is None
    await channel.close()


async def _start_grouped(broker, handler, group, *, size=8, wait_s=0.05, concurrency=2) -> Consumer:
    connection, publisher, topology = broker
    consumer = Consumer(
        connection=connection,
        publisher=publisher,
        topology=topology,
        service="grouped",
        routing_keys=["step.started.v1"],
        handlers={"step.started.v1": handler},
        retry=TEST_RETRY,
        prefetch=size,
        grouping=Grouping(
            handler=group, types=frozenset({"step.started.v1"}), size=size, wait_s=wait_s, concurrency=concurrency
        ),
    )
    await consumer.start()
    return consumer


async def _queue_depth(broker, service="grouped") -> int:
    connection, _, topology = broker
    channel = await connection.channel()
    queue = await channel.declare_queue(topology.queue(service), passive=True)
    await channel.close()
    return queue.declaration_result.message_count


async def test_messages_arriving_together_reach_the_group_handler_together_and_are_acked_after_it(broker) -> None:
    groups: list[list[uuid.UUID]] = []
    release = asyncio.Event()

    async def single(event: Event) -> Sequence[Event]:
        raise AssertionError("every message should go through the group")

    async def group(events: Sequence[Event]) -> Sequence[Event]:
        groups.append([event.event_id for event in events])
        await release.wait()
        return ()

    consumer = await _start_grouped(broker, single, group)
    # Declared by the first start; publish while it waits, so the messages arrive at once.
    await consumer.stop(1)
    sent = [_event() for _ in range(8)]
    for event in sent:
        await broker[1].publish(event)
    consumer = await _start_grouped(broker, single, group)
    for _ in range(100):
        if groups:
            break
        await asyncio.sleep(0.05)
    assert groups == [[event.event_id for event in sent]]
    assert consumer.in_flight == 1
    release.set()
    for _ in range(100):
        if consumer.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    await consumer.stop(5)
    assert await _queue_depth(broker) == 0, "the group's messages were acked"


async def test_a_failed_group_is_handled_again_one_message_at_a_time(broker) -> None:
    singles: list[uuid.UUID] = []
    poison = _event()

    async def single(event: Event) -> Sequence[Event]:
        if event.event_id == poison.event_id:
            raise PermanentError("this one can never succeed")
        singles.append(event.event_id)
        return ()

    async def group(events: Sequence[Event]) -> Sequence[Event]:
        if any(event.event_id == poison.event_id for event in events):
            raise RuntimeError("one bad event rolls the group back")
        raise AssertionError("the poison event is in the only group")

    consumer = await _start_grouped(broker, single, group)
    await consumer.stop(1)
    good = [_event() for _ in range(3)]
    for event in [good[0], poison, *good[1:]]:
        await broker[1].publish(event)
    consumer = await _start_grouped(broker, single, group)
    dead = await _dead_letters(broker, service="grouped")
    for _ in range(100):
        if len(singles) == 3:
            break
        await asyncio.sleep(0.05)
    await consumer.stop(5)
    assert singles == [event.event_id for event in good], "the others applied, in their order"
    assert [message.message_id for message in dead] == [str(poison.event_id)]
    assert "never succeed" in str(dead[0].headers["x-death-reason"])


async def test_messages_arriving_while_the_groups_run_wait_and_start_as_one_group(broker) -> None:
    groups: list[list[uuid.UUID]] = []
    release = asyncio.Event()

    async def single(event: Event) -> Sequence[Event]:
        raise AssertionError("every message should go through a group")

    async def group(events: Sequence[Event]) -> Sequence[Event]:
        groups.append([event.event_id for event in events])
        await release.wait()
        return ()

    consumer = await _start_grouped(broker, single, group, wait_s=0.0, concurrency=1)
    first = _event()
    await broker[1].publish(first)
    for _ in range(100):
        if groups:
            break
        await asyncio.sleep(0.05)
    later = [_event() for _ in range(5)]
    for event in later:
        await broker[1].publish(event)
    await asyncio.sleep(0.5)
    assert groups == [[first.event_id]], "the busy consumer starts no second group"
    release.set()
    for _ in range(100):
        if len(groups) == 2 and consumer.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    await consumer.stop(5)
    assert groups == [[first.event_id], [event.event_id for event in later]]
    assert await _queue_depth(broker) == 0
