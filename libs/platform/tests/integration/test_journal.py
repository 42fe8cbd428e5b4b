"""The journal keeps every notification, so one with no subscriber is routable; commands stay out of it."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection

from pixtools_contracts import JobCompleted, JobState
from pixtools_platform.broker import Publisher, Topology, Unroutable, connect

from .stage_fixtures import TENANT, queue_length, step_request

pytestmark = pytest.mark.integration


def completed() -> JobCompleted:
    """A notification the stack does not subscribe to: unless a test binds a queue, only the journal routes it."""
    return JobCompleted(
        job_id=uuid.uuid4(),
        tenant_id=TENANT,
        correlation_id="c",
        producer="test",
        state=JobState.SUCCEEDED,
        outputs=[],
        submitted_at=datetime.now(UTC),
    )


@pytest_asyncio.fixture
async def connection(infra) -> AsyncIterator[AbstractRobustConnection]:
    opened = await connect(infra.amqp_url, "test")
    yield opened
    await opened.close()


async def test_notification_without_subscriber_is_confirmed_and_kept_in_the_journal(connection, namespace) -> None:
    topology = Topology(namespace)
    publisher = await Publisher.open(connection, topology)
    try:
        await publisher.publish(completed())
        assert await queue_length(connection, topology.journal) == 1
    finally:
        await publisher.close()


async def test_notification_with_a_subscriber_is_kept_in_the_journal_too(connection, namespace) -> None:
    # The README promises recent notifications in the journal, subscribed or not: an alternate exchange taking
    # only the unroutable ones (one classic copy fewer per subscribed event) would break that, and fail here.
    topology = Topology(namespace)
    publisher = await Publisher.open(connection, topology)
    channel = await connection.channel()
    try:
        subscriber = await channel.declare_queue(exclusive=True)
        await subscriber.bind(topology.events, routing_key="job.completed.v1")
        await publisher.publish(completed())
        assert await queue_length(connection, subscriber.name) == 1
        assert await queue_length(connection, topology.journal) == 1
    finally:
        await channel.close()
        await publisher.close()


async def test_command_without_consumer_stays_unroutable(connection, namespace) -> None:
    publisher = await Publisher.open(connection, Topology(namespace))
    try:
        with pytest.raises(Unroutable):
            await publisher.publish(step_request())
    finally:
        await publisher.close()
