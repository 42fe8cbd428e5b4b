"""Per-tenant request rates, counted in Redis when the gateway has one and in this process otherwise.

The counting is the `limits` library's moving window: a tenant allowed `rate` a second may spend `rate ×
window_s` within any `window_s` seconds, so a sustained rate is capped at `rate` and a burst at `window_s`
times it. Redis makes the count one for every replica.

When Redis fails, the limiter fails open to this process's own count for `retry_s`, with a logged warning and
a metric: no request is refused or fails for want of Redis, and a tenant within its limits is never refused
(a replica's count is at most the shared one), but a burst is still bounded per replica. Failing open to no
limit at all turns overload into an outage: on a busy event loop Redis calls time out, the limits switch
off, every request of the burst is served in full, and the loop falls further behind (measured; see
docs/benchmarks.md).
"""

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter

# A refused or unanswered connection fails fast. A command's timeout is counted on the event loop, which lags
# under a burst: a short one would read a busy gateway as a Redis outage and switch the limits off exactly
# when they matter, so it only catches a Redis that hangs.
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
        self._limiter = MovingWindowRateLimiter(storage)
        self._local = MovingWindowRateLimiter(storage if isinstance(storage, MemoryStorage) else MemoryStorage())
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
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
                socket_timeout=REDIS_TIMEOUT_S,
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
                return await self._spend(self._limiter, item, tenant, route_class, cost)
            except (StorageError, OSError, TimeoutError) as error:
                self._health.failed("rate", error)
        return await self._spend(self._local, item, tenant, route_class, cost)

    async def _spend(
        self, limiter: MovingWindowRateLimiter, item: RateLimitItem, tenant: str, route_class: str, cost: int
    ) -> Verdict:
        allowed = await limiter.hit(item, tenant, route_class, cost=cost)
        reset_time, remaining = await limiter.get_window_stats(item, tenant, route_class)
        reset_s = max(1, math.ceil(reset_time - time.time()))
        return Verdict(allowed, item.amount, self._window_s, max(0, remaining), reset_s)
