"""Announcing that a step started, only when its work runs long enough for anyone to see it."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any

from pixtools_contracts import Event

log = logging.getLogger(__name__)


class _Announcement:
    """A timer that publishes the event once it runs out; time spent queued for a worker thread stops it."""

    def __init__(self, announce: Callable[[Event], Coroutine[Any, Any, None]], event: Event, after_s: float) -> None:
        self._announce = announce
        self._event = event
        self._after_s = after_s
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._publishing: asyncio.Task[None] | None = None
        self.work_started = False

    def arm(self) -> None:
        """Start (or restart) the countdown from now."""
        self.disarm()
        if self._publishing is None:
            self._timer = self._loop.call_later(self._after_s, self._publish)

    def disarm(self) -> None:
        """Stop the countdown; nothing is published unless it is armed again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _publish(self) -> None:
        self._timer = None
        self._publishing = self._loop.create_task(self._announce(self._event))

    async def finish(self) -> None:
        """Stop the countdown; an announcement already under way is awaited, and its failure only logged."""
        self.disarm()
        if self._publishing is None:
            return
        try:
            await self._publishing
        except Exception as error:
            # Best effort: the step's own results are published (and retried) independently.
            log.warning("could not announce step start", extra={"error": repr(error)})


_current: ContextVar[_Announcement | None] = ContextVar("pixtools_announcement", default=None)


@contextlib.asynccontextmanager
async def announce_if_slow(
    announce: Callable[[Event], Coroutine[Any, Any, None]], event: Event, after_s: float
) -> AsyncIterator[None]:
    """Publish `event` once the block has run for `after_s` seconds; a faster block publishes nothing.

    Most CPU steps finish in milliseconds, and a 'started' event for each would double the aggregator's
    work for a state no client could observe. Long steps (big images, GPU work) still show as running.
    Time the step waits for its first worker thread (see `waiting_for_a_worker`) does not count: under
    load a queued step has not started, and announcing it would add a message per step when the broker
    and the aggregator can least afford it.
    """
    if after_s <= 0:
        await announce(event)
        yield
        return
    announcement = _Announcement(announce, event, after_s)
    announcement.arm()
    token = _current.set(announcement)
    try:
        yield
    finally:
        _current.reset(token)
        await announcement.finish()


@contextlib.contextmanager
def waiting_for_a_worker() -> Iterator[None]:
    """Mark a wait for a worker thread: before the step's work first starts, it does not count as running.

    The countdown of the step's announcement (if any) stops for the wait and starts afresh after it; once
    the step's work has started, later waits (a second pass on the thread pool) count like any other time.
    """
    announcement = _current.get()
    if announcement is None or announcement.work_started:
        yield
        return
    announcement.disarm()
    try:
        yield
    finally:
        announcement.work_started = True
        announcement.arm()
