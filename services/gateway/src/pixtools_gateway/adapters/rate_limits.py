"""Per-tenant request rates, counted in Redis when the gateway has one and in this process otherwise.

The counting is the `limits` library's moving window: a tenant allowed `rate` a second may spend `rate ×
window_s` within any `window_s` seconds, so a sustained rate is capped at `rate` and a burst at `window_s`
times it. Redis makes the count one for every replica.

With Redis, a check is one round trip: the library's own two scripts (the moving window's spend, then its read
for the RateLimit fields) go out in one pipeline, where the library's `hit` and `get_window_stats` send them in
two. Each round trip is an await after which the request resumes behind whatever else the event loop has
queued, such as another tenant's burst (measured; see docs/benchmarks.md, `isolation`).

When Redis fails, the limiter fails open to this process's own count for `retry_s`, with a logged warning and
a metric: no request is refused or fails for want of Redis, and a tenant within its limits is never refused
(a replica's count is at most the shared one), but a burst is still bounded per replica. Failing open to no
limit at all turns overload into an outage: on a busy event loop Redis calls time out, the limits switch
off, every request of the burst is served in full, and the loop falls further behind (measured; see
docs/benchmarks.md).
"""

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis.asyncio
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter
from redis.exceptions import NoScriptError

# A refused or unanswered connection fails fast. A check's timeout is counted on the event loop, which lags under
# a burst: a short one would read a busy gateway as a Redis outage and switch the limits off exactly when they
# matter, so it only catches a Redis that hangs. It bounds the whole check (`asyncio.timeout`) rather than each
# socket operation: redis-py bounds a send with `asyncio.wait_for`, which on Python 3.11 runs the send as a task
# of its own, one more turn of the event loop for every check to wait through.
REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_TIMEOUT_S = 2.0

LIMITER_FAILURES = Counter(
    "pixtools_rate_limiter_failures_total",
    "Limit checks that could not reach Redis and were counted in the process instead.",
    ["check"],
)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """The outcome of spending from a tenant's allowance of one route class."""

    allowed: bool
    quota: int
    window_s: int
    remaining: int
    reset_s: int


class Window(Protocol):
    """A moving window to spend from: (allowed, when the window next frees (epoch s), what remains of it)."""

    async def spend(self, item: RateLimitItem, key: tuple[str, ...], cost: int) -> tuple[bool, float, int]:
        """Spend `cost` from the item's window for `key`, unless that goes over; then read the window."""
        ...


class LibraryWindow:
    """The `limits` library's moving window: `hit`, then `get_window_stats` (two calls to the storage)."""

    def __init__(self, storage: Storage) -> None:
        self._limiter = MovingWindowRateLimiter(storage)

    async def spend(self, item: RateLimitItem, key: tuple[str, ...], cost: int) -> tuple[bool, float, int]:
        """Spend, then read the window's stats."""
        allowed = await self._limiter.hit(item, *key, cost=cost)
        reset_time, remaining = await self._limiter.get_window_stats(item, *key)
        return allowed, reset_time, remaining


class RedisPipelinedWindow:
    """The library's moving window in its Redis storage: its own two scripts, sent in one pipeline.

    The acquire script and the window script are the ones `hit` and `get_window_stats` run, by their hashes, in
    one round trip without a transaction (the window script reads what the acquire script just wrote, since Redis
    runs a connection's commands in order). A Redis that has not loaded them yet (a restart, `SCRIPT FLUSH`)
    answers NOSCRIPT: the scripts are loaded and the pipeline sent once more.
    """

    def __init__(self, storage: RedisStorage) -> None:
        self._bridge = cast(RedispyBridge, storage.bridge)

    async def spend(self, item: RateLimitItem, key: tuple[str, ...], cost: int) -> tuple[bool, float, int]:
        """Spend and read in one round trip; Redis errors are raised as the library's `StorageError`.

        A check cut off by its timeout leaves no half-read answer behind: redis-py drops a connection whose
        command was interrupted.
        """
        expiry = item.get_expiry()
        redis_key = self._bridge.prefixed_key(item.key_for(*key))
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                try:
                    acquired, window = await self._send(redis_key, item.amount, expiry, cost)
                except NoScriptError:
                    for script in (self._bridge.lua_acquire_moving_window, self._bridge.lua_moving_window):
                        await self._client().script_load(script.script)
                    acquired, window = await self._send(redis_key, item.amount, expiry, cost)
        except self._bridge.base_exceptions as error:
            raise StorageError(error) from error
        now = time.time()
        oldest, count = (float(window[0]), int(window[1])) if window else (now, 0)
        return bool(acquired), oldest + expiry, item.amount - count

    def _client(self) -> redis.asyncio.Redis:
        return cast(redis.asyncio.Redis, self._bridge.get_connection())

    async def _send(self, redis_key: str, limit: int, expiry: int, cost: int) -> list[Any]:
        now = time.time()
        async with self._client().pipeline(transaction=False) as pipeline:
            pipeline.evalsha(self._bridge.lua_acquire_moving_window.sha, 1, redis_key, now, limit, expiry, cost)
            pipeline.evalsha(self._bridge.lua_moving_window.sha, 1, redis_key, now - expiry, limit)
            return await pipeline.execute()


class StorageDown:
    """Remembers that a storage failed, so requests skip it for `retry_s` instead of each waiting on it."""

    def __init__(self, retry_s: float) -> None:
        self._retry_s = retry_s
        self._until = 0.0

    @property
    def down(self) -> bool:
        """Whether the storage failed less than `retry_s` ago."""
        return time.monotonic() < self._until

    def failed(self, check: str, error: BaseException) -> None:
        """Count and log one failure, and skip the storage for a while."""
        LIMITER_FAILURES.labels(check).inc()
        if not self.down:
            log.warning(
                "rate limiter storage unreachable; counting in this process for now", extra={"error": repr(error)}
            )
        self._until = time.monotonic() + self._retry_s


class RateLimiter:
    """Spends from per-tenant allowances: `spend(tenant, "reads", rate=100)` and the like."""

    def __init__(self, storage: Storage, *, window_s: int, retry_s: float) -> None:
        self._shared: Window = (
            RedisPipelinedWindow(storage) if isinstance(storage, RedisStorage) else LibraryWindow(storage)
        )
        self._local: Window = self._shared if isinstance(storage, MemoryStorage) else LibraryWindow(MemoryStorage())
        self._window_s = window_s
        self._health = StorageDown(retry_s)

    @classmethod
    def connect(cls, redis_url: str | None, *, window_s: int, retry_s: float) -> "RateLimiter":
        """A limiter on Redis at `redis_url`, or in this process when it is None; nothing connects yet."""
        storage: Storage
        if redis_url:
            storage = RedisStorage(
                "async+" + redis_url,
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix="pixtools-limits",
                # No socket_timeout: each check is bounded by REDIS_TIMEOUT_S in all instead.
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            )
        else:
            storage = MemoryStorage()
        return cls(storage, window_s=window_s, retry_s=retry_s)

    def item(self, rate: int) -> RateLimitItem:
        """The moving-window limit of `rate` a second with bursts of `window_s` times that."""
        return RateLimitItemPerSecond(rate * self._window_s, self._window_s)

    async def spend(self, tenant: str, route_class: str, *, rate: int, cost: int = 1) -> Verdict:
        """Spend `cost` from the tenant's allowance of `route_class`; a refusal spends nothing."""
        item = self.item(rate)
        if not self._health.down:
            try:
                return await self._spend(self._shared, item, tenant, route_class, cost)
            except (StorageError, OSError, TimeoutError) as error:
                self._health.failed("rate", error)
        return await self._spend(self._local, item, tenant, route_class, cost)

    async def _spend(self, window: Window, item: RateLimitItem, tenant: str, route_class: str, cost: int) -> Verdict:
        allowed, reset_time, remaining = await window.spend(item, (tenant, route_class), cost)
        reset_s = max(1, math.ceil(reset_time - time.time()))
        return Verdict(allowed, item.amount, self._window_s, max(0, remaining), reset_s)
