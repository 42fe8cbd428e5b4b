"""`last_used_at` of API keys, written off the request path and at most once per interval per key."""

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

_RECORD = text(
    "UPDATE api_keys SET last_used_at = used.at "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:times AS timestamptz[])) AS used(id, at) "
    "WHERE api_keys.id = used.id AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < used.at)"
)


class KeyUsage:
    """Requests `touch` a key (a dict lookup); a background task writes what is due in one statement."""

    def __init__(self, engine: AsyncEngine, interval_s: float) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._noted: dict[uuid.UUID, float] = {}
        self._pending: dict[uuid.UUID, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def touch(self, key_id: uuid.UUID) -> None:
        """Note that the key was used now, unless it was noted less than an interval ago."""
        now = time.monotonic()
        if now - self._noted.get(key_id, -self._interval_s) < self._interval_s:
            return
        self._noted[key_id] = now
        self._pending[key_id] = datetime.now(UTC)

    def start(self) -> None:
        """Write what was noted every second, or every interval if that is shorter."""
        self._task = asyncio.create_task(self._run(), name="key-usage")

    async def stop(self) -> None:
        """Stop, writing what is still pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        """Write every pending `last_used_at` in one statement; a failed write is dropped, not retried."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            async with self._engine.begin() as connection:
                await connection.execute(_RECORD, {"ids": list(pending), "times": list(pending.values())})
        except (SQLAlchemyError, OSError) as error:
            log.warning("could not record API key use", extra={"error": repr(error), "keys": len(pending)})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._interval_s))
            await self.flush()
