"""Verified API keys, remembered for a short while and forgotten the moment Postgres says a key changed.

A trigger on `api_keys` NOTIFYs `pixtools_api_keys` with the key's id when it is revoked, its expiry or
scopes change, or it is deleted; each gateway process LISTENs on its own connection and drops the key at
once, so a revocation reaches every replica within the notification's delay. While that connection is down
nothing is cached (every request reads the key), and a cached key never outlives its `expires_at`.

A connection can also die silently (a network partition, a frozen server): no error, and no notifications
either. So the connection is pinged every `_PING_S`, and the cache is trusted only while the last answered
ping was sent less than `_TRUST_S` ago: a notification committed before a ping is delivered before its
answer, so a revocation is missed for at most `_TRUST_S`, dead connection or not. Past that every request
reads its key from the database until a ping is answered again.

The same connection LISTENs on the process's other channels while they are wanted (`listen`, `unlisten`: the job
and batch changes, while an event stream waits). Postgres wakes every backend that listens in the database at each
NOTIFY, whatever its channels, so a second listening connection per process cost Postgres CPU at every job's change;
the channels wanted when the connection comes back are listened on again. asyncpg runs one command at a time on a
connection: the ping, each LISTEN and UNLISTEN, and the LISTENs of a new connection take `_commands` in turn.
"""

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "pixtools_api_keys"
_RECONNECT_S = 1.0
_PING_S = 0.25
_TRUST_S = 0.9
APPLICATION_NAME = "pixtools-key-cache"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the API key, its tenant (none for admin keys) and the scopes it may use."""

    key_id: uuid.UUID
    tenant_id: uuid.UUID | None
    scopes: frozenset[str]
    expires_at: datetime | None = None
    via_token: bool = False

    def live(self) -> bool:
        """Not past its expiry."""
        return self.expires_at is None or self.expires_at > datetime.now(UTC)


class KeyCache:
    """Callers by key hash and by key id, each kept until min(now + ttl, the key's expiry) or a notification."""

    def __init__(self, database_url: str, ttl_s: float) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._ttl_s = ttl_s
        self._wanted: dict[str, Callable[[str], None]] = {}
        self._listened: set[str] = set()  # the channels of `_wanted` LISTENed on the current connection
        self._commands = asyncio.Lock()
        self._by_hash: dict[str, tuple[float, Caller]] = {}
        self._by_id: dict[uuid.UUID, tuple[float, Caller]] = {}
        self._hashes: dict[uuid.UUID, str] = {}
        self._connection: asyncpg.Connection | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._generation = 0
        self._confirmed_at = -math.inf

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is open (it may still have died silently: see `trusted`)."""
        return self._connection is not None and not self._connection.is_closed()

    @property
    def trusted(self) -> bool:
        """Whether every notification sent over `_TRUST_S` ago has arrived, so that cached keys may be served."""
        return self.listening and time.monotonic() - self._confirmed_at < _TRUST_S

    @property
    def generation(self) -> int:
        """Advances with every notification and every lost connection: read it before loading a key."""
        return self._generation

    async def start(self) -> None:
        """Listen for key changes and keep listening: reconnect after a drop, caching nothing meanwhile."""
        await self._connect()
        self._watchdog = asyncio.create_task(self._watch(), name="key-cache-watchdog")

    async def stop(self) -> None:
        """Stop listening."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._connection is not None:
            # A connection closed on purpose is not a lost one: no warning at every shutdown.
            self._connection.remove_termination_listener(self._on_lost)
            async with self._commands:  # after a LISTEN or UNLISTEN in flight, which is bounded
                try:
                    await self._connection.close(timeout=_TRUST_S)
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    self._connection.terminate()  # a connection that stopped answering does not hold up shutdown

    async def listen(self, channels: Mapping[str, Callable[[str], None]]) -> bool:
        """LISTEN on these channels too, now and after every reconnect, each handing its payloads to its callback.

        Returns whether the LISTENs are in effect (committed) on return: False while the connection is down.
        """
        self._wanted.update(channels)
        if self.listening and all(channel in self._listened for channel in channels):
            return True  # already listened on: no command
        # A stream that stops waiting does not cancel a command half sent on the shared connection.
        return await asyncio.shield(self._listen_wanted())

    async def unlisten(self, channels: Iterable[str]) -> None:
        """Stop listening on these channels (until `listen` asks for them again)."""
        for channel in channels:
            self._wanted.pop(channel, None)
        await asyncio.shield(self._listen_wanted())

    def by_hash(self, key_hash: str) -> Caller | None:
        """The cached caller of a key, by the key's hash."""
        return self._fresh(self._by_hash.get(key_hash))

    def by_id(self, key_id: uuid.UUID) -> Caller | None:
        """The cached caller of a key, by the key's id (for access tokens)."""
        return self._fresh(self._by_id.get(key_id))

    def remember(self, caller: Caller, *, key_hash: str | None, since: int) -> None:
        """Cache a caller loaded from the database, unless a key changed after `since` (the read may be stale)."""
        if self._ttl_s <= 0 or not self.listening or since != self._generation:
            return
        deadline = time.monotonic() + self._ttl_s
        if caller.expires_at is not None:
            deadline = min(deadline, time.monotonic() + (caller.expires_at - datetime.now(UTC)).total_seconds())
        self._by_id[caller.key_id] = (deadline, caller)
        if key_hash is not None:
            self._by_hash[key_hash] = (deadline, caller)
            self._hashes[caller.key_id] = key_hash

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop everything cached about one key."""
        self._generation += 1
        self._by_id.pop(key_id, None)
        key_hash = self._hashes.pop(key_id, None)
        if key_hash is not None:
            self._by_hash.pop(key_hash, None)

    def clear(self) -> None:
        """Drop everything cached."""
        self._generation += 1
        self._by_hash.clear()
        self._by_id.clear()
        self._hashes.clear()

    def _fresh(self, entry: tuple[float, Caller] | None) -> Caller | None:
        if entry is None or entry[0] <= time.monotonic() or not self.trusted:
            return None
        return entry[1]

    def _on_notify(self, connection: object, pid: int, channel: str, payload: str) -> None:
        try:
            key_id = uuid.UUID(payload)
        except ValueError:
            self.clear()
            return
        self.forget(key_id)

    def _on_channel(self, connection: object, pid: int, channel: str, payload: str) -> None:
        """A notification on one of the other channels: to the callback `listen` was given for it, while wanted."""
        on_payload = self._wanted.get(channel)
        if on_payload is not None:
            on_payload(payload)

    def _on_lost(self, connection: object) -> None:
        log.warning("API key notifications lost; keys are read from the database until they are back")
        self.clear()
        self._lost.set()

    async def _listen_wanted(self) -> bool:
        """Make the current connection's LISTENs match `_wanted`; whether it is up and they do.

        Every change of `_wanted` is followed by a call, and each call reads `_wanted` while it holds `_commands`,
        so the last call leaves the connection listening on exactly what is wanted then.
        """
        async with self._commands:
            connection = self._connection
            if connection is None or connection.is_closed():
                return False
            try:
                for channel in self._listened - self._wanted.keys():
                    self._listened.discard(channel)
                    await asyncio.wait_for(connection.remove_listener(channel, self._on_channel), _TRUST_S)
                for channel in self._wanted.keys() - self._listened:
                    await asyncio.wait_for(connection.add_listener(channel, self._on_channel), _TRUST_S)
                    self._listened.add(channel)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                # A connection that does not answer a LISTEN is lost: the reconnect listens on what is wanted then.
                log.warning("LISTEN failed; reconnecting", extra={"error": repr(error)})
                self.clear()
                connection.terminate()
                return False
            return True

    async def _connect(self) -> None:
        try:
            sent_at = time.monotonic()
            connection = await asyncpg.connect(
                self._dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME}
            )
            await connection.add_listener(CHANNEL, self._on_notify)
            connection.add_termination_listener(self._on_lost)
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            log.warning("API key notifications unavailable; keys are not cached", extra={"error": repr(error)})
            return
        async with self._commands:
            # Whatever changed while nobody listened is unknown: start from nothing.
            self.clear()
            self._connection = connection
            self._listened = set()
            self._confirmed_at = sent_at
        await self._listen_wanted()

    async def _watch(self) -> None:
        """Reconnect a lost connection, and ping a live one so that a silently dead one is noticed."""
        while True:
            if not self.listening:
                await asyncio.sleep(_RECONNECT_S)
                await self._connect()
                continue
            self._lost.clear()
            try:
                await asyncio.wait_for(self._lost.wait(), _PING_S)
                continue  # lost: reconnect now
            except TimeoutError:
                pass
            connection = self._connection
            if connection is None or connection.is_closed():
                continue
            try:
                async with self._commands:
                    sent_at = time.monotonic()
                    await connection.execute("SELECT 1", timeout=_TRUST_S)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.clear()
                connection.terminate()
                continue
            self._confirmed_at = sent_at
