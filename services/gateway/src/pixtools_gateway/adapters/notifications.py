"""Job and batch change notifications from Postgres LISTEN, fanned out to SSE streams in this process.

The channels are listened on only while a stream waits (`JobNotifications.watch`).
"""

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "pixtools_jobs"
BATCH_CHANNEL = "pixtools_batches"
LINGER_S = 0.2  # how long the channels stay listened on after the last stream left: see docs/benchmarks.md

_NOTIFY_ALL = text("SELECT pg_notify(:channel, id) FROM unnest(CAST(:ids AS text[])) AS id").bindparams(channel=CHANNEL)


async def notify_changed(session: AsyncSession, ids: Iterable[uuid.UUID]) -> None:
    """NOTIFY listeners that these jobs or batches changed (ids never collide), in one statement.

    Postgres delivers the notifications only if the transaction commits.
    """
    await session.execute(_NOTIFY_ALL, {"ids": [str(some_id) for some_id in ids]})


class ChannelListener(Protocol):
    """A connection that LISTENs on channels while asked to (the key cache's)."""

    async def listen(self, channels: Mapping[str, Callable[[str], None]]) -> bool:
        """LISTEN on these channels, now and after reconnects; whether the LISTENs are in effect on return."""
        ...

    async def unlisten(self, channels: Iterable[str]) -> None:
        """Stop listening on these channels."""
        ...


class JobNotifications:
    """Wakes the streams waiting on a job or batch when its NOTIFY arrives, and listens only while one waits.

    It opens no connection of its own: its channels are LISTENed on the key cache's connection, because Postgres wakes
    every listening backend of the database at each NOTIFY, whatever the channel, so a second listening connection per
    process cost Postgres CPU at every job's change. And it listens only while a stream waits: every job's NOTIFY
    costs the listening backend and this process CPU, for nothing when no stream waits.

    No change is missed: `watch` returns only once the LISTEN has committed (or the connection is down), and the
    stream reads the job after that, on another connection. A change committed before the LISTEN took effect is
    visible to that read; one committed after is NOTIFYed to this process. While the connection is down, or the
    LISTEN fails, streams still poll every second (`progress.POLL_S`), and the reconnect listens again.

    The last stream to leave UNLISTENs only after `linger_s` without another, so that streams opening and closing one
    after another do not send a LISTEN and an UNLISTEN each.
    """

    def __init__(self, listener: ChannelListener, *, linger_s: float = LINGER_S) -> None:
        self._listener = listener
        self._linger_s = linger_s
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._opened = 0  # streams opened so far: a release is void if one opened after it was planned
        self._releases: set[asyncio.Task[None]] = set()
        self.channels: Mapping[str, Callable[[str], None]] = {CHANNEL: self.changed, BATCH_CHANNEL: self.changed}
        """The channels to LISTEN on while a stream waits, each with what to do with a notification's payload."""

    def changed(self, some_id: str) -> None:
        """Wake the streams of this job or batch."""
        for event in self._waiters.get(some_id, ()):
            event.set()

    @contextlib.asynccontextmanager
    async def watch(self, some_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the job (or batch: ids never collide) changes, for as long as the block runs.

        Entered once the LISTEN is in effect: read the job inside the block, not before.
        """
        event = asyncio.Event()
        self._waiters[some_id].add(event)
        self._opened += 1
        try:
            await self._listener.listen(self.channels)
            yield event
        finally:
            self._waiters[some_id].discard(event)
            if not self._waiters[some_id]:
                del self._waiters[some_id]
            if not self._waiters:  # the last stream of this process left
                release = asyncio.create_task(self._release(self._opened), name="job-notifications-release")
                self._releases.add(release)
                release.add_done_callback(self._releases.discard)

    async def close(self) -> None:
        """Cancel the planned releases (at shutdown: the connection closes anyway)."""
        for release in list(self._releases):
            release.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await release

    async def _release(self, opened: int) -> None:
        """UNLISTEN after `linger_s`, unless a stream opened meanwhile (its own leaving plans the next release)."""
        await asyncio.sleep(self._linger_s)
        if self._waiters or self._opened != opened:
            return
        await self._listener.unlisten(self.channels)
