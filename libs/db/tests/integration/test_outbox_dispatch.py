"""Publishing on commit: a staged event reaches the broker as its transaction commits, never the sweep's job."""

import asyncio
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_contracts import JobCancelled
from pixtools_db import Outbox, create_engine, session_factory
from pixtools_db.outbox import OutboxRelay, add_events, encode_events, events_committed, stage_event_rows
from pixtools_platform.broker import Publisher, Topology

pytestmark = pytest.mark.integration

SWEEP_AFTER_S = 600
"""The sweep's grace period in these tests: anything published within seconds was published by the commit."""


@dataclass
class Wired:
    """A database and a broker connection with the topology declared, and a queue hearing every cancellation."""

    sessions: async_sessionmaker[AsyncSession]
    connection: AbstractRobustConnection
    topology: Topology
    publisher: Publisher
    heard: AbstractQueue


@dataclass
class Relayed:
    sessions: async_sessionmaker[AsyncSession]
    relay: OutboxRelay
    heard: AbstractQueue


@pytest_asyncio.fixture
async def wired(infra, database_url, namespace) -> AsyncIterator[Wired]:
    engine = create_engine(database_url, pool_size=2)
    connection: AbstractRobustConnection = await aio_pika.connect_robust(infra.amqp_url)
    try:
        topology = Topology(namespace)
        publisher = await Publisher.open(connection, topology)
        heard = await _hearing_cancellations(connection, topology)
        yield Wired(session_factory(engine), connection, topology, publisher, heard)
    finally:
        await connection.close()
        await engine.dispose()


@pytest_asyncio.fixture
async def relayed(wired: Wired) -> AsyncIterator[Relayed]:
    relay = OutboxRelay(wired.sessions, wired.publisher, poll_s=SWEEP_AFTER_S, grace_s=SWEEP_AFTER_S)
    relay.start()
    try:
        yield Relayed(wired.sessions, relay, wired.heard)
    finally:
        await relay.stop()


async def _hearing_cancellations(connection: AbstractRobustConnection, topology: Topology) -> AbstractQueue:
    """A private queue hearing every `job.cancelled.v1` the events exchange routes (the events these tests stage)."""
    heard = await (await connection.channel()).declare_queue(exclusive=True)
    await heard.bind(topology.events, "job.cancelled.v1")
    return heard


def _cancelled() -> JobCancelled:
    return JobCancelled(
        job_id=uuid.uuid4(), tenant_id=uuid.uuid4(), correlation_id="c", producer="test", reason="testing"
    )


async def _next_message_id(queue: AbstractQueue, timeout_s: float) -> str | None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message.message_id
        await asyncio.sleep(0.02)
    return None


async def _hears(queue: AbstractQueue, message_id: str, timeout_s: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
        if await _next_message_id(queue, remaining) == message_id:
            return True
    return False


async def _stored(sessions: async_sessionmaker[AsyncSession], event_id: uuid.UUID) -> bool:
    """True while the event's row is in the outbox: committed, and not yet deleted after a confirmed publish."""
    async with sessions() as session:
        found = await session.scalar(select(func.count()).select_from(Outbox).where(Outbox.event_id == event_id))
    return found == 1


async def _deleted(sessions: async_sessionmaker[AsyncSession], event_id: uuid.UUID) -> bool:
    """True once the relay has deleted the event's row (its publish was confirmed), polled for five seconds."""
    for _ in range(100):
        if not await _stored(sessions, event_id):
            return True
        await asyncio.sleep(0.05)
    return False


async def _next_relay_publishes_and_deletes(
    sessions: async_sessionmaker[AsyncSession], publisher: Publisher, heard: AbstractQueue, event_id: uuid.UUID
) -> None:
    """A new relay (another replica, or the restarted process) sweeps the row: its event is heard, then the row is
    gone (the sweep deletes its rows when its claiming transaction commits, a moment after the publish)."""
    relay = OutboxRelay(sessions, publisher, poll_s=0.1, grace_s=0.1)
    relay.start()
    try:
        assert await _hears(heard, str(event_id), timeout_s=10)
        assert await _deleted(sessions, event_id)
    finally:
        await relay.stop()


async def test_a_committed_event_is_published_at_once_and_its_row_deleted(relayed: Relayed) -> None:
    event = _cancelled()
    async with relayed.sessions.begin() as session:
        add_events(session, [event])
    assert await _next_message_id(relayed.heard, timeout_s=5) == str(event.event_id)
    assert await _deleted(relayed.sessions, event.event_id)
    assert await _next_message_id(relayed.heard, timeout_s=0.5) is None, "published twice"


async def test_an_event_whose_publish_at_commit_fails_keeps_its_row_for_the_sweep(wired: Wired) -> None:
    # A lone event's publish is awaited without a task of its own: a failure there (here the relay's channel is
    # closed, so the publish raises) must still leave the row for the sweep, which publishes it.
    closed = await Publisher.open(wired.connection, wired.topology)
    await closed.close()
    relay = OutboxRelay(wired.sessions, closed, poll_s=SWEEP_AFTER_S, grace_s=SWEEP_AFTER_S)
    relay.start()
    event = _cancelled()
    try:
        async with wired.sessions.begin() as session:
            add_events(session, [event])
        assert await _next_message_id(wired.heard, timeout_s=1.0) is None
        assert await _stored(wired.sessions, event.event_id), "a failed publish deleted its row"
    finally:
        await relay.stop()
    await _next_relay_publishes_and_deletes(wired.sessions, wired.publisher, wired.heard, event.event_id)


async def test_an_event_staged_as_rows_is_published_with_its_rows_body(relayed: Relayed) -> None:
    # The gateway's path: the rows go into a statement of the writer's own, and the publish reuses their bytes.
    event = _cancelled()
    async with relayed.sessions.begin() as session:
        rows = stage_event_rows(session, [event])
        await session.execute(insert(Outbox), rows)
    message = await _next_message(relayed.heard, timeout_s=5)
    assert message is not None
    assert message.message_id == str(event.event_id)
    # The row itself is gone by now (deleted once the publish was confirmed): compare with what was inserted.
    assert message.body == rows[0]["body"] == event.model_dump_json().encode()
    assert (message.type, message.correlation_id, message.app_id) == ("job.cancelled.v1", "c", "test")
    assert await _deleted(relayed.sessions, event.event_id)


async def test_an_event_inserted_in_autocommit_is_published_once_handed_over(relayed: Relayed) -> None:
    # The gateway's submission path: its own single INSERT in autocommit, no session, then the hand-over.
    event = _cancelled()
    encoded = encode_events([event])
    engine = relayed.sessions.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(insert(Outbox), [item.row() for item in encoded])
    assert await _next_message_id(relayed.heard, timeout_s=0.5) is None, "published before the hand-over"
    events_committed(relayed.sessions, encoded)
    message = await _next_message(relayed.heard, timeout_s=5)
    assert message is not None
    assert message.message_id == str(event.event_id)
    assert message.body == event.model_dump_json().encode()
    assert await _deleted(relayed.sessions, event.event_id)


async def _next_message(queue: AbstractQueue, timeout_s: float) -> AbstractIncomingMessage | None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.02)
    return None


async def test_a_rolled_back_event_is_never_published(relayed: Relayed) -> None:
    with pytest.raises(RuntimeError):
        await _stage_then_fail(relayed.sessions)
    assert await _next_message_id(relayed.heard, timeout_s=1) is None
    kept = _cancelled()
    async with relayed.sessions.begin() as session:
        add_events(session, [kept])
    assert await _next_message_id(relayed.heard, timeout_s=5) == str(kept.event_id)


async def test_a_session_closed_without_commit_hands_nothing_over_when_reused(relayed: Relayed) -> None:
    abandoned, kept = _cancelled(), _cancelled()
    session = relayed.sessions()
    add_events(session, [abandoned])
    await session.flush()
    await session.close()
    async with session.begin():
        add_events(session, [kept])
    assert await _next_message_id(relayed.heard, timeout_s=5) == str(kept.event_id)
    assert await _next_message_id(relayed.heard, timeout_s=0.5) is None
    assert not await _stored(relayed.sessions, abandoned.event_id), "its transaction never committed"


async def _stage_then_fail(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        add_events(session, [_cancelled()])
        await session.flush()
        raise RuntimeError("the writer failed after staging")


async def test_a_stopped_relay_leaves_new_commits_to_the_next_relay(relayed: Relayed) -> None:
    await relayed.relay.stop()
    event = _cancelled()
    async with relayed.sessions.begin() as session:
        add_events(session, [event])
    assert await _next_message_id(relayed.heard, timeout_s=1) is None
    assert await _stored(relayed.sessions, event.event_id), "the row waits for the next relay"


# A writer process whose relay is killed the instant a commit hands it the staged event, before the publish.
_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys, uuid
    from pixtools_contracts import JobCancelled
    from sqlalchemy import insert
    from pixtools_db import Outbox, create_engine, session_factory
    from pixtools_db.outbox import OutboxRelay, add_events, encode_events, events_committed, stage_event_rows

    class DiesOnPublish:
        async def publish_json(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        sessions = session_factory(create_engine(sys.argv[1], pool_size=1))
        OutboxRelay(sessions, DiesOnPublish(), poll_s=600, grace_s=600).start()
        event = JobCancelled(
            event_id=uuid.UUID(sys.argv[2]), job_id=uuid.uuid4(), tenant_id=uuid.uuid4(),
            correlation_id="c", producer="test", reason="testing",
        )
        if sys.argv[3] == "statement":
            encoded = encode_events([event])
            engine = sessions.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")
            async with engine.connect() as connection:
                await connection.execute(insert(Outbox), [item.row() for item in encoded])
            events_committed(sessions, encoded)
        else:
            async with sessions.begin() as session:
                if sys.argv[3] == "rows":
                    await session.execute(insert(Outbox), stage_event_rows(session, [event]))
                else:
                    add_events(session, [event])
        await asyncio.sleep(30)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("staged_as", ["models", "rows", "statement"])
async def test_a_writer_killed_between_commit_and_publish_loses_no_event(
    wired: Wired, database_url, staged_as: str
) -> None:
    # "rows": the relay gets the encoded event at the session's commit and publishes the row's bytes; "statement"
    # is the gateway's submission path: its own autocommit INSERT, then the hand-over of the encoded events.
    event_id = uuid.uuid4()
    command = [sys.executable, "-c", _KILLED_WRITER, database_url, str(event_id), staged_as]
    child = await asyncio.to_thread(subprocess.run, command, timeout=60, check=False)
    assert child.returncode == -signal.SIGKILL
    assert await _stored(wired.sessions, event_id), "the kill came before the publish"
    # The next relay to run (another replica, or the restarted process) sweeps the committed row.
    # Rows other tests left unpublished in this database may come first.
    await _next_relay_publishes_and_deletes(wired.sessions, wired.publisher, wired.heard, event_id)


# A relay killed after the broker confirmed its publish and before the DELETE of the row committed. "commit": the
# publish on commit, killed as its autocommit DELETE is about to be sent; "sweep": the polling loop, killed after
# the DELETE ran in the claiming transaction and before that transaction's COMMIT.
_KILLED_BEFORE_THE_DELETE = textwrap.dedent(
    """
    import asyncio, os, signal, sys, uuid
    import aio_pika
    from sqlalchemy import event
    from pixtools_contracts import JobCancelled
    from pixtools_db import create_engine, session_factory
    from pixtools_db.outbox import OutboxRelay, add_events
    from pixtools_platform.broker import Publisher, Topology

    database_url, amqp_url, namespace, event_id, path = sys.argv[1:]

    def kill_at_the_delete(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("DELETE FROM outbox") and event_id in str(parameters):
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        engine = create_engine(database_url, pool_size=2)
        moment = "before_cursor_execute" if path == "commit" else "after_cursor_execute"
        event.listen(engine.sync_engine, moment, kill_at_the_delete)
        sessions = session_factory(engine)
        publisher = await Publisher.open(await aio_pika.connect_robust(amqp_url), Topology(namespace))
        cancelled = JobCancelled(
            event_id=uuid.UUID(event_id), job_id=uuid.uuid4(), tenant_id=uuid.uuid4(),
            correlation_id="c", producer="test", reason="testing",
        )
        if path == "commit":
            OutboxRelay(sessions, publisher, poll_s=600, grace_s=600).start()
        async with sessions.begin() as session:
            add_events(session, [cancelled])
        if path == "sweep":
            # Started after the commit, so only its sweep can publish the row.
            OutboxRelay(sessions, publisher, poll_s=0.1, grace_s=0).start()
        await asyncio.sleep(30)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("path", ["commit", "sweep"])
async def test_a_relay_killed_after_the_confirm_and_before_the_delete_commits_loses_no_event(
    wired: Wired, infra, database_url, namespace, path: str
) -> None:
    event_id = uuid.uuid4()
    command = [sys.executable, "-c", _KILLED_BEFORE_THE_DELETE, database_url, infra.amqp_url, namespace]
    child = await asyncio.to_thread(
        subprocess.run, [*command, str(event_id), path], timeout=60, check=False, capture_output=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-4000:]
    # The broker had confirmed the event before the kill, so a consumer already has it once, and the row that
    # would have been deleted is still there.
    assert await _hears(wired.heard, str(event_id), timeout_s=5)
    assert await _stored(wired.sessions, event_id), "the kill came before the delete committed"
    # The next relay's sweep publishes it again under the same event id: a copy that consumers deduplicate
    # (the aggregator's inbox is keyed by event id), and nothing lost. Then the row is gone.
    await _next_relay_publishes_and_deletes(wired.sessions, wired.publisher, wired.heard, event_id)
