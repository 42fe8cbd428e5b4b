"""The transactional outbox: events are written with the state that caused them, then relayed with confirms."""

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Select, Table, any_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import func

from pixtools_db.commits import committed, defer, on_commit
from pixtools_db.encoded_events import EncodedEvent, OutboxEvent
from pixtools_db.schema import Outbox

log = logging.getLogger(__name__)


OUTBOX_TOPIC = "outbox"
"""The commit-hook topic of staged events: a relay watching the session factory publishes them on commit."""


def add_events(session: AsyncSession, events: Iterable[OutboxEvent]) -> None:
    """Stage events in the caller's transaction; they are published only if it commits, at once if a relay watches."""
    encoded = [EncodedEvent.of(event) for event in events]
    defer(session, OUTBOX_TOPIC, encoded)
    session.add_all(Outbox(**item.row()) for item in encoded)


def stage_event_rows(session: AsyncSession, events: Iterable[OutboxEvent]) -> list[dict[str, Any]]:
    """The outbox rows of these events, for a caller that inserts them in a statement of its own in `session`.

    Like `add_events`, the events are handed to the relay only once the session commits, and dropped if it does
    not.
    """
    encoded = [EncodedEvent.of(event) for event in events]
    defer(session, OUTBOX_TOPIC, encoded)
    return [item.row() for item in encoded]


def encode_events(events: Iterable[OutboxEvent]) -> list[EncodedEvent]:
    """Events encoded once, for a writer that inserts their rows (`EncodedEvent.row`) in an autocommit statement
    of its own and then hands them over with `events_committed`."""
    return [EncodedEvent.of(event) for event in events]


def events_committed(sessions: async_sessionmaker[AsyncSession], events: list[EncodedEvent]) -> None:
    """Hand events whose outbox rows have just committed to the relay watching `sessions`, to publish at once.

    Only after the statement that inserted the rows returned: until then nothing was committed. A writer killed
    between the two leaves committed rows that the relay's sweep publishes after its grace period.
    """
    committed(sessions, OUTBOX_TOPIC, events)


OUTBOX_COLUMNS = ("event_id", "event_type", "routing_key", "body", "headers")
"""The columns of an outbox row that a writer sets; the rest have defaults."""


def _envelope(body: bytes) -> dict[str, str]:
    """The string fields of a stored event body: the sweep reads correlation_id and producer from it."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {key: value for key, value in decoded.items() if isinstance(value, str)}


class JsonPublisher(Protocol):
    """Publishes an encoded event with confirms (satisfied by pixtools_platform's Publisher)."""

    async def publish_json(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        message_type: str,
        headers: Mapping[str, str],
        correlation_id: str | None = None,
        app_id: str | None = None,
    ) -> None: ...


# `= ANY(array)` rather than an expanding IN: one statement text, compiled and prepared once, whatever the count.
# On the table, not the entity: the ORM's bulk DELETE would first look for the rows among the session's objects.
_OUTBOX = cast(Table, Outbox.__table__)
_DELETE_PUBLISHED = delete(_OUTBOX).where(
    _OUTBOX.c.event_id == any_(bindparam("event_ids", type_=ARRAY(_OUTBOX.c.event_id.type)))
)
# The sweep's plan, for its transaction only: a plain index scan of `ix_outbox_unpublished`. Deleted rows stay in the
# heap until a vacuum, and a connection that planned the sweep while the table was nearly empty keeps a plan that
# reads the whole heap, dead rows included, on every poll (measured: 432 pages for 20 waiting rows among 3000
# deleted). The index scan reads only the entries of rows still waiting, and marks those of deleted rows dead as it
# passes them, so the next poll skips them (14 pages). A bitmap scan would visit the heap without marking them.
SWEEP_PLAN = select(func.set_config("enable_seqscan", "off", True), func.set_config("enable_bitmapscan", "off", True))
"""Planner settings local to the sweep's transaction, sent before its claim."""
DELETE_EVERY_S = 0.2
"""How long the relay gathers published events before one DELETE removes all their rows."""


class OutboxRelay:
    """Publishes committed events: at once after their commit, and by polling for anything that was missed.

    While the relay runs, every commit of a session from its factory that staged events hands them to
    `dispatch_soon` (a commit hook, so no writer has to remember it), which publishes them with confirms and then
    deletes their rows; that is one DELETE instead of a claiming transaction per commit. The polling loop only
    claims rows older than `grace_s` that this process is not publishing itself, with FOR UPDATE SKIP LOCKED so
    replicas share the work; it covers a process that died between its commit and its publish, or between the
    broker's confirm and the DELETE. Should both paths still publish a row (a dispatch stalled past the grace
    period, or a relay killed before its DELETE), consumers see it twice, which they already tolerate
    (at-least-once delivery, deduplication by event id, deterministic output keys).

    A row is deleted, not marked published, once the broker has confirmed its event: nothing reads a published
    row, and marking one rewrote the whole row with its body (about 1.3 KB of WAL) only for the retention to
    delete it a day later. Rows that older versions marked (`published_at` set) are never claimed again; the
    retention deletes them.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: JsonPublisher,
        *,
        batch: int = 100,
        poll_s: float = 0.5,
        grace_s: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._batch = batch
        self._poll_s = poll_s
        self._grace = timedelta(seconds=grace_s)
        self._task: asyncio.Task[None] | None = None
        self._dispatching: set[asyncio.Task[None]] = set()
        self._in_flight: set[object] = set()
        self._to_delete: list[object] = []
        self._delete_wake = asyncio.Event()
        self._deleter: asyncio.Task[None] | None = None
        self._stopped = False
        # Built once: constructing the claim and its cache key on every poll cost more than sending it.
        self._claim = self._build_claim()

    def dispatch_soon(self, events: Sequence[EncodedEvent]) -> None:
        """Publish events whose transaction has just committed, without waiting for the polling loop.

        `add_events` and `stage_event_rows` stage them encoded, so they go out with their row's body bytes.
        """
        # A session opened before `stop` may still commit; its rows are left to the next relay's sweep.
        if events and not self._stopped:
            self._in_flight |= {event.event_id for event in events}
            task = asyncio.create_task(self._dispatch(list(events)))
            self._dispatching.add(task)
            task.add_done_callback(self._dispatching.discard)

    async def _dispatch(self, events: list[EncodedEvent]) -> None:
        results: list[BaseException | None] = [None]
        if len(events) == 1:
            # Most commits stage one event (a submission, a job's end): awaited here, not in a task of gather's own.
            try:
                await self._publish_event(events[0])
            except Exception as error:
                results = [error]
        else:
            results = await asyncio.gather(*(self._publish_event(event) for event in events), return_exceptions=True)
        for event, result in zip(events, results, strict=True):
            if result is None:
                self._to_delete.append(event.event_id)
            else:
                self._in_flight.discard(event.event_id)
                log.warning("immediate publish failed; the relay will retry", extra={"error": repr(result)})
        self._delete_wake.set()

    async def _delete_published(self) -> None:
        """Delete the rows of every event confirmed since the last call in one DELETE; under load, many commits
        share it."""
        ids, self._to_delete = self._to_delete, []
        if not ids:
            return
        try:
            async with self._sessions() as session:
                # One DELETE is atomic on its own: no BEGIN and COMMIT round trips around it.
                connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                await connection.execute(_DELETE_PUBLISHED, {"event_ids": ids})
        except Exception:
            log.exception("could not delete published events' rows; the relay may publish them again")
        finally:
            self._in_flight.difference_update(ids)

    async def _delete_loop(self) -> None:
        while True:
            await self._delete_wake.wait()
            # A row deleted a little later costs nothing: until it is deleted, only the sweep, after its grace
            # period, would publish it again. Waiting lets the publishes of many requests share one DELETE.
            await asyncio.sleep(DELETE_EVERY_S)
            self._delete_wake.clear()
            await self._delete_published()

    async def _publish_event(self, event: EncodedEvent) -> None:
        await self._publisher.publish_json(
            event.routing_key,
            event.body,
            message_id=str(event.event_id),
            message_type=event.event_type,
            headers=event.headers,
            correlation_id=event.correlation_id,
            app_id=event.producer,
        )

    def start(self) -> None:
        """Publish staged events as their transactions commit, and run the sweep in the background."""
        on_commit(self._sessions, OUTBOX_TOPIC, self.dispatch_soon)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        self._deleter = asyncio.create_task(self._delete_loop(), name="outbox-deleter")

    async def stop(self) -> None:
        """Finish immediate publishes, stop after the batch in hand; unpublished rows stay for the next relay."""
        on_commit(self._sessions, OUTBOX_TOPIC, None)
        self._stopped = True
        if self._dispatching:
            await asyncio.gather(*self._dispatching, return_exceptions=True)
        if self._deleter is not None:
            self._deleter.cancel()
            await asyncio.gather(self._deleter, return_exceptions=True)
        await self._delete_published()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published (and deleted)."""
        async with self._sessions.begin() as session:
            await session.execute(SWEEP_PLAN)
            rows = (await session.scalars(self.claim_waiting())).all()
            # Rows this process is publishing right now are not the sweep's to publish again.
            rows = [row for row in rows if row.event_id not in self._in_flight]
            if not rows:
                return 0
            results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
            published = []
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    row.attempts += 1
                    row.last_error = f"{type(result).__name__}: {result}"[:2000]
                    log.warning("outbox publish failed", extra={"event_id": str(row.event_id), "error": repr(result)})
                else:
                    published.append(row.event_id)
            if published:
                # In the claiming transaction: a relay killed before its commit leaves the rows, still locked by
                # nobody, to the next sweep, which publishes them again.
                await session.execute(_DELETE_PUBLISHED, {"event_ids": published})
            return len(published)

    def claim_waiting(self) -> Select[Outbox]:
        """The sweep's claim: a batch of unpublished rows past their grace period that no other relay holds."""
        return self._claim

    def _build_claim(self) -> Select[Outbox]:
        return (
            select(Outbox)
            # Rows an older version marked published are done; the retention deletes them.
            .where(Outbox.published_at.is_(None), Outbox.created_at < func.now() - self._backoff())
            # Rows that keep failing (a command no service consumes yet) sink behind fresh ones.
            .order_by(Outbox.attempts, Outbox.id)
            .limit(self._batch)
            .with_for_update(skip_locked=True)
        )

    def _backoff(self) -> Any:
        """The grace period, doubled per failed attempt (capped at 2^10): a row that keeps failing is retried
        less and less often instead of on every poll."""
        seconds = self._grace.total_seconds() * func.power(2, func.least(Outbox.attempts, 10))
        return func.make_interval(0, 0, 0, 0, 0, 0, seconds)

    async def _publish(self, row: Outbox) -> None:
        envelope = _envelope(row.body)
        await self._publisher.publish_json(
            row.routing_key,
            row.body,
            message_id=str(row.event_id),
            message_type=row.event_type,
            headers={str(key): str(value) for key, value in row.headers.items()},
            correlation_id=envelope.get("correlation_id"),
            app_id=envelope.get("producer"),
        )

    async def _run(self) -> None:
        while True:
            try:
                published = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay batch failed")
                published = 0
            if published < self._batch:
                # Fresh events are published by dispatch_soon; the sweep only needs to come back now and then.
                await asyncio.sleep(self._poll_s)
