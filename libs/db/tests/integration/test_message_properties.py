"""Every path that publishes an event sets the AMQP properties the AsyncAPI document promises a consumer."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_contracts import Event, JobCancelled, asyncapi_document
from pixtools_db import Outbox, create_engine, session_factory
from pixtools_db.outbox import OutboxRelay, add_events
from pixtools_platform.broker import Publisher, Topology

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Wired:
    sessions: async_sessionmaker[AsyncSession]
    publisher: Publisher
    heard: AbstractQueue


@pytest_asyncio.fixture
async def wired(infra, database_url, namespace) -> AsyncIterator[Wired]:
    engine = create_engine(database_url, pool_size=2)
    connection: AbstractRobustConnection = await aio_pika.connect_robust(infra.amqp_url)
    topology = Topology(namespace)
    publisher = await Publisher.open(connection, topology)
    heard = await (await connection.channel()).declare_queue(exclusive=True)
    await heard.bind(topology.events, "job.cancelled.v1")
    try:
        yield Wired(session_factory(engine), publisher, heard)
    finally:
        await connection.close()
        await engine.dispose()


def _cancelled() -> JobCancelled:
    return JobCancelled(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id=f"req-{uuid.uuid4().hex[:8]}",
        producer="gateway",
        traceparent=TRACEPARENT,
        tracestate="vendor=1",
    )


async def _received(queue: AbstractQueue, event: Event, timeout_s: float = 10) -> AbstractIncomingMessage:
    """The message carrying `event`, skipping others (rows other tests left in this database may come first)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(0.02)
        elif message.message_id == str(event.event_id):
            return message
    raise AssertionError(f"{event.event_id} was never delivered")


async def _published(sessions: async_sessionmaker[AsyncSession], event: Event) -> bool:
    """True once the relay has deleted the event's row, which it does only after the broker confirmed it."""
    async with sessions() as session:
        left = await session.scalar(select(func.count()).select_from(Outbox).where(Outbox.event_id == event.event_id))
    return left == 0


def _assert_documented_properties(message: AbstractIncomingMessage, event: JobCancelled) -> None:
    assert message.message_id == str(event.event_id)
    assert message.correlation_id == event.correlation_id
    assert message.type == "job.cancelled.v1"
    assert message.app_id == "gateway"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.headers == {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    documented = asyncapi_document()["components"]["messages"]["JobCancelled"]["x-amqp-properties"]
    assert {"message_id", "correlation_id", "type", "app_id", "content_type", "delivery_mode"} <= set(documented)


async def test_a_directly_published_event_carries_every_documented_property(wired: Wired) -> None:
    event = _cancelled()
    await wired.publisher.publish(event)
    _assert_documented_properties(await _received(wired.heard, event), event)


async def test_the_outbox_relay_publishing_on_commit_sets_correlation_id_and_app_id(wired: Wired) -> None:
    relay = OutboxRelay(wired.sessions, wired.publisher, poll_s=600, grace_s=600)
    relay.start()
    try:
        event = _cancelled()
        async with wired.sessions.begin() as session:
            add_events(session, [event])
        _assert_documented_properties(await _received(wired.heard, event), event)
    finally:
        await relay.stop()


async def test_the_outbox_relay_sweeping_a_stored_row_sets_correlation_id_and_app_id(wired: Wired) -> None:
    event = _cancelled()
    async with wired.sessions.begin() as session:
        add_events(session, [event])
    # No relay watched that commit: the row waits for a sweep, which reads the properties from the stored body.
    relay = OutboxRelay(wired.sessions, wired.publisher, grace_s=0)
    # Rows other tests left here may fill whole batches that fail (commands no queue of this namespace takes);
    # failed rows sink behind fresh ones, so sweep until this one is published rather than until a batch is empty.
    for _ in range(20):
        await relay.relay_once()
        if await _published(wired.sessions, event):
            break
    _assert_documented_properties(await _received(wired.heard, event), event)
