"""Job and batch change notifications from Postgres LISTEN, fanned out to SSE streams in this process."""

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

CHANNEL = "pixtools_jobs"
BATCH_CHANNEL = "pixtools_batches"

_NOTIFY_ALL = text("SELECT pg_notify(:channel, id) FROM unnest(CAST(:ids AS text[])) AS id").bindparams(channel=CHANNEL)


async def notify_changed(session: AsyncSession, ids: Iterable[uuid.UUID]) -> None:
    """NOTIFY listeners that these jobs or batches changed (ids never collide), in one statement.

    Postgres delivers the notifications only if the transaction commits.
    """
    await session.execute(_NOTIFY_ALL, {"ids": [str(some_id) for some_id in ids]})


class JobNotifications:
    """Listens on one connection; each stream waits on an event for its job id."""

    def __init__(self, database_url: str) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._connection: asyncpg.Connection | None = None

    async def start(self) -> None:
        """Open the listening connection; streams fall back to polling if this fails."""
        try:
            self._connection = await asyncpg.connect(self._dsn)
            await self._connection.add_listener(CHANNEL, self._on_notify)
            await self._connection.add_listener(BATCH_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("job notifications unavailable; streams will poll", extra={"error": repr(error)})

    async def stop(self) -> None:
        """Close the listening connection."""
        if self._connection is not None:
            await self._connection.close()

    def _on_notify(self, connection: object, pid: int, channel: str, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the job (or batch: ids never collide) changes, for as long as the block runs."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            self._waiters[job_id].discard(event)
            if not self._waiters[job_id]:
                del self._waiters[job_id]
