"""Per-tenant request rates, counted in Redis when the gateway has one and in this process otherwise.

The counting is the `limits` library's moving window: a tenant allowed `rate` a second may spend `rate ×
window_s` within any `window_s` seconds, so a sustained rate is capped at `rate` and a burst at `window_s`
times it. Redis makes the count one for every replica. When Redis cannot be reached, requests pass (fail
open) with a logged warning and a metric: a limiter outage must not become an API outage.
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

# Seconds a Redis command may take before the limiter gives up on it and lets the request through.
REDIS_TIMEOUT_S = 0.25

LIMITER_FAILURES = Counter(
    "pixtools_rate_limiter_failures_total",
    "Limit checks that could not reach the limiter's storage and let the request through.",
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
            log.warning("rate limiter storage unreachable; letting requests through", extra={"error": repr(error)})
        self._until = time.monotonic() + self._retry_s


class RateLimiter:
    """Spends from per-tenant allowances: `spend(tenant, "reads", rate=100)` and the like."""

    def __init__(self, storage: Storage, *, window_s: int, retry_s: float) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._storage = storage
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
                socket_connect_timeout=REDIS_TIMEOUT_S,
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
        if self._health.down:
            return self._unlimited(item)
        try:
            allowed = await self._limiter.hit(item, tenant, route_class, cost=cost)
            reset_time, remaining = await self._limiter.get_window_stats(item, tenant, route_class)
        except (StorageError, OSError, TimeoutError) as error:
            self._health.failed("rate", error)
            return self._unlimited(item)
        reset_s = max(1, math.ceil(reset_time - time.time()))
        return Verdict(allowed, item.amount, self._window_s, max(0, remaining), reset_s)

    def _unlimited(self, item: RateLimitItem) -> Verdict:
        return Verdict(True, item.amount, self._window_s, item.amount, self._window_s)
