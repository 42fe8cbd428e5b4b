"""Per-tenant limits as the routes apply them: request rates by route class, open streams, unfinished jobs.

Route classes are `submissions` (jobs submitted; a batch item is one), `reads` (every other tenant request)
and `streams` (progress streams open at once). A tenant's overrides come from the database through a cache
of `limits_cache_s`, so a change applies within seconds and no request waits on a read of them.

The unfinished-jobs quota is checked against a count cached for `quota_cache_s` per tenant plus the jobs this
process has added since; the count is a bounded index scan (`LIMIT quota + 1`). Two replicas, or requests in
flight together, can each admit jobs the other has not counted yet: the overshoot is bounded by what a tenant
may submit in `quota_cache_s` (its submission rate), and the next count sees it.
"""

import time
import uuid
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from pixtools_gateway.adapters.rate_limits import RateLimiter, Verdict
from pixtools_gateway.adapters.stream_slots import StreamSlots, stream_slots
from pixtools_gateway.errors import QuotaExceeded, RateLimited
from pixtools_gateway.handlers.limits import Limits, count_unfinished, read_overrides
from pixtools_gateway.settings import GatewaySettings

REFUSED = Counter(
    "pixtools_http_limited_total",
    "Requests refused with 429, by route class (submissions, reads, streams, quota).",
    ["route_class"],
)


@dataclass(frozen=True)
class Spent:
    """What a request spent from one route class, for its RateLimit headers."""

    route_class: str
    verdict: Verdict


class Limiting:
    """Applies each tenant's limits; one per gateway process, its counts shared through Redis when set."""

    def __init__(self, settings: GatewaySettings, reader: AsyncEngine) -> None:
        self._settings = settings
        self._reader = reader
        self._defaults = Limits(
            submissions_per_s=settings.submissions_per_s,
            reads_per_s=settings.reads_per_s,
            streams=settings.streams_per_tenant,
            unfinished_jobs=settings.unfinished_jobs_quota,
        )
        self.rates = RateLimiter.connect(
            settings.redis_url, window_s=settings.rate_window_s, retry_s=settings.redis_retry_s
        )
        self.slots: StreamSlots = stream_slots(
            settings.redis_url, ttl_s=settings.stream_slot_ttl_s, retry_s=settings.redis_retry_s
        )
        self._limits: dict[uuid.UUID, tuple[float, Limits]] = {}
        self._unfinished: dict[uuid.UUID, tuple[float, int]] = {}

    async def limits_of(self, tenant_id: uuid.UUID) -> Limits:
        """The tenant's limits in force, from the cache or the database."""
        cached = self._limits.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self._reader.connect() as connection:
            overrides = await read_overrides(connection, tenant_id=tenant_id)
        found = overrides.applied_to(self._defaults)
        self._limits[tenant_id] = (time.monotonic() + self._settings.limits_cache_s, found)
        return found

    async def spend(self, tenant_id: uuid.UUID, route_class: str, *, cost: int = 1) -> Spent:
        """Spend `cost` requests of `route_class` ("submissions" or "reads"); 429 when the allowance is spent.

        A batch costing more than the whole burst allowance is charged the allowance: it passes once the
        window is empty, and empties it.
        """
        limits = await self.limits_of(tenant_id)
        rate = limits.submissions_per_s if route_class == "submissions" else limits.reads_per_s
        cost = min(cost, rate * self._settings.rate_window_s)
        verdict = await self.rates.spend(str(tenant_id), route_class, rate=rate, cost=cost)
        spent = Spent(route_class, verdict)
        if not verdict.allowed:
            REFUSED.labels(route_class).inc()
            raise RateLimited(
                f"more than {verdict.quota} {route_class} in {verdict.window_s} s "
                f"({rate}/s with bursts of {verdict.quota}); retry after Retry-After's seconds",
                headers={"Retry-After": str(verdict.reset_s), **rate_limit_headers(spent)},
            )
        return spent

    async def admit_jobs(self, tenant_id: uuid.UUID, jobs: int) -> None:
        """Refuse with 429 `quota-exceeded` when `jobs` more would take the tenant over its unfinished quota."""
        quota = (await self.limits_of(tenant_id)).unfinished_jobs
        cached = self._unfinished.get(tenant_id)
        if cached is None or cached[0] <= time.monotonic():
            async with self._reader.connect() as connection:
                count = await count_unfinished(connection, tenant_id=tenant_id, up_to=quota + 1)
            cached = (time.monotonic() + self._settings.quota_cache_s, count)
            self._unfinished[tenant_id] = cached
        if cached[1] + jobs > quota:
            REFUSED.labels("quota").inc()
            raise QuotaExceeded(
                f"the quota of {quota} unfinished jobs (accepted or running) would be exceeded: "
                f"{cached[1]} are unfinished and this request adds {jobs}; retry once some finish",
                headers={"Retry-After": str(max(1, round(self._settings.quota_cache_s)))},
            )

    def jobs_added(self, tenant_id: uuid.UUID, jobs: int) -> None:
        """Count jobs this process just created against the cached unfinished count."""
        cached = self._unfinished.get(tenant_id)
        if cached is not None:
            self._unfinished[tenant_id] = (cached[0], cached[1] + jobs)

    async def claim_stream(self, tenant_id: uuid.UUID) -> str:
        """A stream slot for the tenant; 429 when it has its limit of streams open."""
        limit = (await self.limits_of(tenant_id)).streams
        slot = await self.slots.claim(str(tenant_id), limit)
        if slot is None:
            REFUSED.labels("streams").inc()
            retry_s = max(1, round(self._settings.stream_slot_ttl_s / 3))
            raise RateLimited(
                f"{limit} progress streams are already open; close one first",
                headers={
                    "Retry-After": str(retry_s),
                    "RateLimit-Policy": f'"streams";q={limit}',
                    "RateLimit": f'"streams";r=0;t={retry_s}',
                },
            )
        return slot

    async def close(self) -> None:
        """Let go of the limiter's connections."""
        await self.slots.close()


def rate_limit_headers(spent: Spent) -> dict[str, str]:
    """`RateLimit-Policy` and `RateLimit` fields as draft-ietf-httpapi-ratelimit-headers-10 writes them."""
    verdict = spent.verdict
    name = f'"{spent.route_class}"'
    return {
        "RateLimit-Policy": f"{name};q={verdict.quota};w={verdict.window_s}",
        "RateLimit": f"{name};r={verdict.remaining};t={verdict.reset_s}",
    }
