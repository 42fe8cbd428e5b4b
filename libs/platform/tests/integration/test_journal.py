"""The journal keeps a notification with no subscriber routable, and only notifications."""

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
    """A notification nothing in these tests subscribes to: only the journal can route it."""
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


async def test_command_without_consumer_stays_unroutable(connection, namespace) -> None:
    publisher = await Publisher.open(connection, Topology(namespace))
    try:
        with pytest.raises(Unroutable):
            await publisher.publish(step_request())
    finally:
        await publisher.close()
