"""The two transactions a job repository runs in: a SQLAlchemy session's, or a pooled asyncpg connection's own.

A group of step events needs only its two statements, which go to asyncpg anyway; what the session adds around them
(its connection checkout, transaction bookkeeping and commit, each through a greenlet) cost more CPU than the
statements themselves: about 310 µs a transaction against 115 µs on the pooled connection, measured alone
(docs/benchmarks.md, aggclient). `DriverTransaction` runs the group on the asyncpg connection and joins a session to
that same transaction only when a handler needs the ORM (batches, webhooks, a job's stored outputs).
"""

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import PoolProxiedConnection

from pixtools_db import WebhookDelivery
from pixtools_db.commits import defer
from pixtools_db.encoded_events import EncodedEvent
from pixtools_db.outbox import encode_events, events_committed, stage_event_rows

WEBHOOKS_TOPIC = "webhooks"
"""The commit-hook topic of queued webhook deliveries: the dispatcher is woken when they commit."""


class Transaction(Protocol):
    """Where a job repository's statements run, and how what it stages reaches the relay and the dispatcher."""

    async def driver(self) -> Any:
        """The asyncpg connection, inside the transaction."""
        ...

    async def session(self) -> AsyncSession:
        """A session in the same transaction, for the statements that go through the ORM."""
        ...

    def stage_rows(self, events: Sequence[Any]) -> list[dict[str, Any]]:
        """The outbox rows of these events; the events go to the relay once the transaction commits."""
        ...

    def add_webhook(self, delivery: WebhookDelivery) -> None:
        """Insert a webhook delivery with the transaction; the dispatcher is woken once it commits."""
        ...


class SessionTransaction:
    """The transaction of a session the caller opened and commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def driver(self) -> Any:
        """The asyncpg connection under the session, inside the session's transaction."""
        return await driver_connection(self._session)

    async def session(self) -> AsyncSession:
        """The session itself."""
        return self._session

    def stage_rows(self, events: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows; the session's commit hands the events to the relay."""
        return stage_event_rows(self._session, events)

    def add_webhook(self, delivery: WebhookDelivery) -> None:
        """Added to the session at once: its flush inserts it, whoever commits the session."""
        self._session.add(delivery)
        defer(self._session, WEBHOOKS_TOPIC, [delivery])


class DriverTransaction:
    """A transaction on a pooled asyncpg connection, begun and ended here; a session joins it when one is asked for.

    The transaction is the one SQLAlchemy's asyncpg adapter tracks for the connection, so a session bound to the same
    pooled connection runs its statements in it and its commit is the transaction's commit.
    """

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine = engine
        self._sessions = sessions
        self._pooled: PoolProxiedConnection | None = None
        self._adapted: Any = None
        self._connection: AsyncConnection | None = None
        self._session: AsyncSession | None = None
        self._staged: list[EncodedEvent] = []
        self._webhooks: list[WebhookDelivery] = []

    async def begin(self) -> None:
        """Check a connection out of the engine's pool and send BEGIN on it."""
        self._pooled = await self._engine.raw_connection()
        self._adapted = self._pooled.dbapi_connection
        _check_adapter(self._adapted)
        await self._adapted._start_transaction()

    async def driver(self) -> Any:
        """The asyncpg connection."""
        assert self._pooled is not None
        return self._pooled.driver_connection

    async def session(self) -> AsyncSession:
        """A session bound to this pooled connection; its statements join the transaction begun on it."""
        if self._session is None:
            assert self._pooled is not None
            self._connection = AsyncConnection(self._engine, Connection(self._engine.sync_engine, self._pooled))
            self._session = self._sessions(bind=self._connection)
        return self._session

    def stage_rows(self, events: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows; `commit` hands the events to the relay once the COMMIT has returned."""
        encoded = encode_events(events)
        self._staged.extend(encoded)
        return [item.row() for item in encoded]

    def add_webhook(self, delivery: WebhookDelivery) -> None:
        """Kept until `commit`, which hands it to a session: rare enough that only then is one opened."""
        self._webhooks.append(delivery)

    async def commit(self) -> None:
        """COMMIT, through the session if one joined, so that it flushes first; `hand_over` comes next."""
        if self._webhooks:
            session = await self.session()
            session.add_all(self._webhooks)
            defer(session, WEBHOOKS_TOPIC, self._webhooks)
        if self._session is not None:
            await self._session.commit()
        # A session that never ran a statement commits nothing; the transaction begun on the connection is still open.
        transaction, self._adapted._transaction = self._adapted._transaction, None
        if transaction is not None:
            await transaction.commit()

    def hand_over(self) -> None:
        """Hand the staged events to the relay, once `commit` has returned.

        A process killed between the two leaves committed outbox rows, which the relay's sweep publishes.
        """
        events_committed(self._sessions, self._staged)

    async def rollback(self) -> None:
        """Roll back what was begun; a connection that cannot even do that is dropped from the pool by `close`."""
        if self._adapted is None:
            return
        try:
            if self._session is not None:
                await self._session.rollback()
            transaction, self._adapted._transaction = self._adapted._transaction, None
            if transaction is not None:
                await transaction.rollback()
        except Exception:
            self._adapted._transaction = None
            assert self._pooled is not None
            self._pooled.invalidate()
            return
        assert self._pooled is not None
        driver: Any = self._pooled.driver_connection
        if driver.is_closed():
            self._pooled.invalidate()

    async def close(self) -> None:
        """Return the connection to the pool (through the session's connection, if one was bound to it)."""
        if self._session is not None:
            await self._session.close()
        if self._connection is not None:
            await self._connection.close()
        elif self._pooled is not None:
            self._pooled.close()


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapted: Any = raw.dbapi_connection
    _check_adapter(adapted)
    # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it executes itself: a statement sent
    # straight to the driver before that would run, and commit, on its own.
    if adapted._transaction is None:
        await adapted._start_transaction()
    return raw.driver_connection


def _check_adapter(adapted: Any) -> None:
    # The adapter's private names are checked here, so that an upgrade that renames them fails loudly instead.
    if not hasattr(adapted, "_transaction") or not hasattr(adapted, "_start_transaction"):
        raise RuntimeError("cannot reach the transaction of SQLAlchemy's asyncpg connection")
