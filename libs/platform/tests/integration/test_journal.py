"""The journal keeps a notification with no subscriber routable, and replaces its retired queue with no gap."""

import asyncio
import os
import random
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection

from pixtools_contracts import JobCompleted, JobState
from pixtools_platform.broker import Publisher, Topology, Unroutable, connect

from .journal_upgrader import declare_retired_journal
from .stage_fixtures import TENANT, queue_length, step_request

pytestmark = pytest.mark.integration

UPGRADER = Path(__file__).with_name("journal_upgrader.py")


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


async def queue_exists(connection: AbstractRobustConnection, name: str) -> bool:
    """Whether the broker holds a queue of that name (a passive declare of a missing one closes its channel)."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True, robust=False)
    except Exception:
        return False
    await channel.close()
    return True


async def publisher_declaring_nothing(connection: AbstractRobustConnection, topology: Topology) -> Publisher:
    """A publisher that does not upgrade the journal on opening, as a service of the previous release would not."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    return Publisher(channel, await channel.get_exchange(topology.events))


class PublishingLoop:
    """Publishes notifications one after another, each confirmed, counting what was confirmed and what was not."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.confirmed = 0
        self.unroutable = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self._publisher.publish(completed())
            except Unroutable:
                self.unroutable += 1
            else:
                self.confirmed += 1


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


async def test_retired_journal_is_deleted_only_after_the_current_one_is_bound(connection, namespace) -> None:
    topology = Topology(namespace)
    channel = await connection.channel()
    await declare_retired_journal(channel, topology)
    publisher = await publisher_declaring_nothing(connection, topology)
    loop = PublishingLoop(publisher)
    loop.start()
    try:
        for _ in range(30):
            await declare_retired_journal(channel, topology)
            await channel.queue_delete(topology.journal)
            await topology.declare_exchanges(channel)
    finally:
        await loop.stop()
    assert loop.unroutable == 0
    assert loop.confirmed > 30
    assert not await queue_exists(connection, topology.retired_journal)
    assert await queue_exists(connection, topology.journal)


async def test_killed_upgrade_leaves_every_notification_routable(infra, connection, namespace) -> None:
    topology = Topology(namespace)
    channel = await connection.channel()
    await declare_retired_journal(channel, topology)
    publisher = await publisher_declaring_nothing(connection, topology)
    loop = PublishingLoop(publisher)
    loop.start()
    try:
        for _ in range(4):
            upgrader = await asyncio.create_subprocess_exec(
                sys.executable, str(UPGRADER), infra.amqp_url, namespace, stdout=asyncio.subprocess.PIPE
            )
            assert upgrader.stdout is not None
            assert await asyncio.wait_for(upgrader.stdout.readline(), 30) == b"upgrading\n"
            await asyncio.sleep(random.uniform(0.05, 0.5))
            os.kill(upgrader.pid, signal.SIGKILL)
            assert await upgrader.wait() == -signal.SIGKILL
            confirmed = loop.confirmed
            await asyncio.sleep(0.05)
            assert loop.confirmed > confirmed, "notifications stopped being confirmed after the kill"
    finally:
        await loop.stop()
    assert loop.unroutable == 0
    # The next service to start finishes the upgrade.
    await topology.declare_exchanges(channel)
    assert not await queue_exists(connection, topology.retired_journal)
    await publisher.publish(completed())
