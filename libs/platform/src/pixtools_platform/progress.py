"""Announcing that a step started, only when it runs long enough for anyone to see it."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from pixtools_contracts import Event

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def announce_if_slow(
    announce: Callable[[Event], Coroutine[Any, Any, None]], event: Event, after_s: float
) -> AsyncIterator[None]:
    """Publish `event` once the block has run for `after_s` seconds; a faster block publishes nothing.

    Most CPU steps finish in milliseconds, and a 'started' event for each would double the aggregator's
    work for a state no client could observe. Long steps (big images, GPU work) still show as running.
    """
    if after_s <= 0:
        await announce(event)
        yield
        return
    publishing = False

    async def later() -> None:
        nonlocal publishing
        await asyncio.sleep(after_s)
        publishing = True
        await announce(event)

    task = asyncio.create_task(later())
    try:
        yield
    finally:
        if not publishing:
            task.cancel()
        for outcome in await asyncio.gather(task, return_exceptions=True):
            if isinstance(outcome, Exception):
                # Best effort: the step's own results are published (and retried) independently.
                log.warning("could not announce step start", extra={"error": repr(outcome)})
