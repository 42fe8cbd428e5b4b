"""Job and batch change notifications from Postgres LISTEN, fanned out to SSE streams in this process."""

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "pixtools_jobs"
BATCH_CHANNEL = "pixtools_batches"

_NOTIFY_ALL = text("SELECT pg_notify(:channel, id) FROM unnest(CAST(:ids AS text[])) AS id").bindparams(channel=CHANNEL)


async def notify_changed(session: AsyncSession, ids: Iterable[uuid.UUID]) -> None:
    """NOTIFY listeners that these jobs or batches changed (ids never collide), in one statement.

    Postgres delivers the notifications only if the transaction commits.
    """
    await session.execute(_NOTIFY_ALL, {"ids": [str(some_id) for some_id in ids]})


class JobNotifications:
    """Wakes the streams waiting on a job or batch when its NOTIFY arrives.

    It opens no connection of its own: its channels are LISTENed on the key cache's connection (`KeyCache`'s
    `channels`), because Postgres wakes every listening backend of the database at each NOTIFY, whatever the channel,
    so a second listening connection per process cost Postgres CPU at every job's change. While that connection is
    down, streams still poll.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    @property
    def channels(self) -> dict[str, Callable[[str], None]]:
        """The channels to LISTEN on, each with what to do with a notification's payload."""
        return {CHANNEL: self.changed, BATCH_CHANNEL: self.changed}

    def changed(self, some_id: str) -> None:
        """Wake the streams of this job or batch."""
        for event in self._waiters.get(some_id, ()):
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
