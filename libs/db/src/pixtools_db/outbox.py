"""The transactional outbox: events are written with the state that caused them, then relayed with confirms."""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import func

from pixtools_db.schema import Outbox

log = logging.getLogger(__name__)


class OutboxEvent(Protocol):
    """What the outbox needs of an event (satisfied by every pixtools_contracts.Event)."""

    @property
    def type(self) -> str: ...

    @property
    def traceparent(self) -> str | None: ...

    @property
    def tracestate(self) -> str | None: ...

    @property
    def event_id(self) -> object: ...

    def routing_key(self) -> str: ...

    def model_dump_json(self) -> str: ...


def add_events(session: AsyncSession, events: Iterable[OutboxEvent]) -> None:
    """Stage events in the caller's transaction; they are published only if it commits."""
    for event in events:
        headers = {
            key: value for key, value in (("traceparent", event.traceparent), ("tracestate", event.tracestate)) if value
        }
        session.add(
            Outbox(
                event_id=event.event_id,
                event_type=event.type,
                routing_key=event.routing_key(),
                body=event.model_dump_json().encode(),
                headers=headers,
            )
        )


class JsonPublisher(Protocol):
    """Publishes an encoded event with confirms (satisfied by pixtools_platform's Publisher)."""

    async def publish_json(
        self, routing_key: str, body: bytes, *, message_id: str, message_type: str, headers: Mapping[str, str]
    ) -> None: ...


class OutboxRelay:
    """Publishes unpublished rows in id order, claiming them with FOR UPDATE SKIP LOCKED so replicas share work."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: JsonPublisher,
        *,
        batch: int = 100,
        poll_s: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._batch = batch
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Publish soon: a transaction with outbox rows just committed."""
        self._wake.set()

    def start(self) -> None:
        """Run the relay loop in the background."""
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop after the batch in hand; unpublished rows stay for the next relay."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self._sessions.begin() as session:
            rows = (
                await session.scalars(
                    select(Outbox)
                    .where(Outbox.published_at.is_(None))
                    # Rows that keep failing (a command no service consumes yet) sink behind fresh ones.
                    .order_by(Outbox.attempts, Outbox.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
            published = 0
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    row.attempts += 1
                    row.last_error = f"{type(result).__name__}: {result}"[:2000]
                    log.warning("outbox publish failed", extra={"event_id": str(row.event_id), "error": repr(result)})
                else:
                    row.published_at = func.now()
                    published += 1
            return published

    async def _publish(self, row: Outbox) -> None:
        await self._publisher.publish_json(
            row.routing_key,
            row.body,
            message_id=str(row.event_id),
            message_type=row.event_type,
            headers={str(key): str(value) for key, value in row.headers.items()},
        )

    async def _run(self) -> None:
        while True:
            # Clear before reading, so a wake that arrives while a batch is in hand is not lost.
            self._wake.clear()
            try:
                published = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay batch failed")
                published = 0
            if published >= self._batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
