"""Confirmed, mandatory publishing on a real RabbitMQ: what reaches a queue, what is refused, a reconnect, a kill."""

import asyncio
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from pixtools_contracts import StepStarted
from pixtools_platform.broker import Publisher, Topology, Unroutable, connect

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEARD_KEY = "step.started.v1"


@dataclass
class Wired:
    name: str
    connection: AbstractRobustConnection
    channel: AbstractChannel
    publisher: Publisher
    topology: Topology
    heard: AbstractQueue


@pytest_asyncio.fixture
async def wired(infra, namespace) -> AsyncIterator[Wired]:
    name = f"test-publisher-{uuid.uuid4().hex[:8]}"
    connection = await connect(infra.amqp_url, name)
    topology = Topology(namespace)
    # What `Publisher.open` does, keeping the channel so that a test can see it replaced after a reconnect.
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    publisher = Publisher(channel, await topology.declare_exchanges(channel))
    # The listening queue lives on a connection of its own, so that it outlives a drop of the publisher's one.
    listener = await aio_pika.connect(infra.amqp_url)
    heard = await (await listener.channel()).declare_queue(exclusive=True)
    await heard.bind(topology.events, HEARD_KEY)
    try:
        yield Wired(name, connection, channel, publisher, topology, heard)
    finally:
        await listener.close()
        await connection.close()


def _started(**update: object) -> StepStarted:
    event = StepStarted(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id=f"req-{uuid.uuid4().hex[:8]}",
        producer="ingest",
        traceparent=TRACEPARENT,
        tracestate="vendor=1",
        step_id="0",
        op="resize",
    )
    return event.model_copy(update=update)


async def _next(queue: AbstractQueue, timeout_s: float = 10) -> AbstractIncomingMessage:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.02)
    raise AssertionError("nothing was delivered")


def _wire(message: AbstractIncomingMessage) -> dict[str, object]:
    """Everything a consumer reads of a message except what the broker sets per delivery."""
    info = message.info()
    for per_delivery in ("delivery_tag", "redelivered", "consumer_tag", "exchange", "routing_key"):
        info.pop(per_delivery, None)  # type: ignore[misc]
    return {"body": message.body, **info}


async def test_a_published_event_reaches_a_queue_exactly_as_aio_pika_messages_did(wired: Wired) -> None:
    event = _started()
    await wired.publisher.publish(event)
    ours = await _next(wired.heard)
    # The same event the way the publisher sent it before it built the frame's properties itself.
    before = aio_pika.Message(
        event.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event.event_id),
        correlation_id=event.correlation_id,
        type=event.type,
        app_id=event.producer,
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
    )
    events = await wired.channel.get_exchange(wired.topology.events, ensure=False)
    await events.publish(before, routing_key=HEARD_KEY, mandatory=True)
    assert _wire(ours) == _wire(await _next(wired.heard))
    assert ours.message_id == str(event.event_id)
    assert ours.correlation_id == event.correlation_id
    assert ours.type == "step.started.v1"
    assert ours.app_id == "ingest"
    assert ours.content_type == "application/json"
    assert ours.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert ours.headers == {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}


async def test_the_relays_path_puts_the_same_message_on_the_wire_as_publish(wired: Wired) -> None:
    event = _started()
    await wired.publisher.publish(event)
    await wired.publisher.publish_json(
        HEARD_KEY,
        event.model_dump_json().encode(),
        message_id=str(event.event_id),
        message_type=event.type,
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
        correlation_id=event.correlation_id,
        app_id=event.producer,
    )
    assert _wire(await _next(wired.heard)) == _wire(await _next(wired.heard))


async def test_a_message_published_to_a_named_exchange_keeps_its_own_properties(wired: Wired) -> None:
    channel = await wired.connection.channel()
    parked = await channel.declare_queue(exclusive=True)
    message = aio_pika.Message(b"{}", headers={"x-attempt": 2}, message_id="m-1", type="step.started.v1")
    await wired.publisher.publish_message(parked.name, message, exchange="")
    delivered = await _next(parked)
    assert (delivered.body, delivered.message_id, delivered.type) == (b"{}", "m-1", "step.started.v1")
    assert delivered.headers == {"x-attempt": 2}


async def test_an_event_no_queue_is_bound_to_raises_unroutable(wired: Wired) -> None:
    # Nothing in a fresh namespace binds step.started, and the journal keeps only job.* and objects.*.
    await wired.heard.unbind(wired.topology.events, HEARD_KEY)
    with pytest.raises(Unroutable, match=r"step\.started\.v1"):
        await wired.publisher.publish(_started())
    with pytest.raises(Unroutable):
        await wired.publisher.publish_json(
            "step.requested.v1.nobody", b"{}", message_id=str(uuid.uuid4()), message_type="x", headers={}
        )
    with pytest.raises(Unroutable, match="the default exchange"):
        await wired.publisher.publish_message(f"{wired.topology.namespace}.none", aio_pika.Message(b"{}"), "")


async def test_only_the_unroutable_publishes_among_concurrent_ones_raise(wired: Wired) -> None:
    routable = [_started() for _ in range(20)]
    unroutable = [_started(type="step.started.v9") for _ in range(5)]
    mixed = [*routable[:10], *unroutable, *routable[10:]]
    results = await asyncio.gather(*(wired.publisher.publish(event) for event in mixed), return_exceptions=True)
    raised = {event.event_id for event, result in zip(mixed, results, strict=True) if isinstance(result, Unroutable)}
    assert raised == {event.event_id for event in unroutable}
    assert all(result is None or isinstance(result, Unroutable) for result in results)
    heard = {(await _next(wired.heard)).message_id for _ in routable}
    assert heard == {str(event.event_id) for event in routable}


async def _drop_connection(amqp_url: str, connection_name: str) -> None:
    """Have the broker close the client's connection, as a broker restart or a network cut would end it."""
    host = urlsplit(amqp_url).hostname
    async with httpx.AsyncClient(base_url=f"http://{host}:15672", auth=("guest", "guest"), timeout=5) as client:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            listed = (await client.get("/api/connections", params={"columns": "name,client_properties"})).json()
            names = [c["name"] for c in listed if c["client_properties"].get("connection_name") == connection_name]
            if names:
                for name in names:
                    response = await client.delete(f"/api/connections/{quote(name, safe='')}")
                    assert response.status_code in (204, 404)
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"the broker never listed the connection {connection_name!r}")


async def test_a_publish_after_the_broker_dropped_the_connection_is_confirmed(infra, wired: Wired) -> None:
    await wired.publisher.publish(_started())
    assert await _next(wired.heard)
    before = await wired.channel.get_underlay_channel()
    await _drop_connection(infra.amqp_url, wired.name)
    # Publishes while the connection is down fail (the caller's message stays unacked, or its outbox row stays);
    # once the robust connection has restored the channel, the same publisher works again.
    event = _started()
    deadline = time.monotonic() + 30
    while True:
        try:
            await wired.publisher.publish(event)
            break
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
            assert time.monotonic() < deadline, "the publisher never recovered from the dropped connection"
            await asyncio.sleep(0.1)
    assert await wired.channel.get_underlay_channel() is not before, "the broker did drop the connection"
    delivered = await _next(wired.heard)
    assert delivered.message_id == str(event.event_id)
    assert delivered.headers == {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}


# A publisher with 16 publishes in flight that prints each event id once `publish` returned (its confirm came back),
# killed by the test at a random moment in the stream.
_PUBLISHING = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from pixtools_contracts import StepStarted
    from pixtools_platform.broker import Publisher, Topology, connect

    async def main():
        publisher = await Publisher.open(await connect(sys.argv[1], "killed-publisher"), Topology(sys.argv[2]))

        async def publish_forever():
            while True:
                event = StepStarted(
                    job_id=uuid.uuid4(), tenant_id=uuid.uuid4(), correlation_id="c", producer="test",
                    step_id="0", op="resize",
                )
                await publisher.publish(event)
                print(event.event_id, flush=True)

        await asyncio.gather(*(publish_forever() for _ in range(16)))

    asyncio.run(main())
    """
)


async def test_a_publisher_killed_mid_stream_loses_no_confirmed_event(infra, namespace) -> None:
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        topology = Topology(namespace)
        channel = await connection.channel()
        await topology.declare_exchanges(channel)
        # A durable quorum queue, as every service's: what the broker confirmed survives the publisher's death.
        kept = await channel.declare_queue(
            f"{namespace}.kept", durable=True, arguments={"x-queue-type": "quorum"}, auto_delete=False
        )
        await kept.bind(topology.events, HEARD_KEY)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PUBLISHING,
            infra.amqp_url,
            namespace,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        stop_after = 150 + uuid.uuid4().int % 150
        try:
            confirmed = [await asyncio.wait_for(child.stdout.readline(), 30) for _ in range(stop_after)]
        finally:
            child.send_signal(signal.SIGKILL)
        # What it printed before the signal landed counts too: each line was written after its confirm.
        rest, errors = await child.communicate()
        confirmed += rest.splitlines()
        assert child.returncode == -signal.SIGKILL, errors.decode()[-4000:]
        confirmed_ids = {line.decode().strip() for line in confirmed if line.strip()}
        assert len(confirmed_ids) >= stop_after
        stored: set[str] = set()
        while (message := await kept.get(fail=False, no_ack=True)) is not None:
            stored.add(str(message.message_id))
        # Every publish that returned was stored; the ones in flight at the kill may or may not have been.
        assert confirmed_ids <= stored
        await kept.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
