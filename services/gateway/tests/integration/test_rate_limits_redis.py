"""The limiter's one-round-trip window on real Redis: the library's moving-window scripts in one pipeline."""

import asyncio
import os
import time
import uuid

import pytest
import redis.asyncio
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from pixtools_gateway.adapters.rate_limits import LIMITER_FAILURES, REDIS_TIMEOUT_S, RateLimiter

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("PIXTOOLS_TEST_REDIS_URL", "redis://localhost:6379/0")


@pytest.fixture
async def limiter() -> RateLimiter:
    """A limiter on the shared Redis (a missing Redis fails the test, it does not skip it)."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    await client.ping()
    await client.aclose()
    return RateLimiter.connect(REDIS_URL, window_s=2, retry_s=5)


def _library_on(limiter: RateLimiter) -> MovingWindowRateLimiter:
    """The `limits` library's own moving window over the same storage and keys as the limiter."""
    return MovingWindowRateLimiter(
        RedisStorage("async+" + REDIS_URL, wrap_exceptions=True, implementation="redispy", key_prefix="pixtools-limits")
    )


async def test_the_redis_window_allows_the_burst_then_refuses_and_charges_nothing_for_a_refusal(limiter):
    tenant = f"tenant-{uuid.uuid4()}"
    verdicts = [await limiter.spend(tenant, "reads", rate=5) for _ in range(11)]

    assert [verdict.allowed for verdict in verdicts] == [True] * 10 + [False]
    assert [verdict.remaining for verdict in verdicts] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0]
    assert all(1 <= verdict.reset_s <= 2 for verdict in verdicts)
    assert (await limiter.spend(tenant, "submissions", rate=5, cost=10)).remaining == 0
    assert not (await limiter.spend(tenant, "submissions", rate=5)).allowed


async def test_the_pipeline_counts_in_the_libraries_own_window(limiter):
    tenant = f"tenant-{uuid.uuid4()}"
    library = _library_on(limiter)
    item = limiter.item(5)

    await limiter.spend(tenant, "reads", rate=5, cost=3)
    assert await library.hit(item, tenant, "reads", cost=4)
    stats = await library.get_window_stats(item, tenant, "reads")
    last = await limiter.spend(tenant, "reads", rate=5, cost=3)
    over = await limiter.spend(tenant, "reads", rate=5)

    assert stats.remaining == 3
    assert (last.allowed, last.remaining) == (True, 0)
    assert (over.allowed, over.remaining) == (False, 0)
    assert (await library.get_window_stats(item, tenant, "reads")).remaining == 0


async def test_a_redis_that_lost_its_scripts_loads_them_and_answers(limiter):
    tenant = f"tenant-{uuid.uuid4()}"
    await limiter.spend(tenant, "reads", rate=5)
    failures = LIMITER_FAILURES.labels("rate")._value.get()
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    await client.script_flush()
    await client.aclose()

    verdict = await limiter.spend(tenant, "reads", rate=5, cost=2)

    # Counted in Redis, not in this process: the library's own reading agrees and no failure was recorded.
    assert (verdict.allowed, verdict.remaining) == (True, 7)
    assert (await _library_on(limiter).get_window_stats(limiter.item(5), tenant, "reads")).remaining == 7
    assert LIMITER_FAILURES.labels("rate")._value.get() == failures


async def test_a_redis_that_never_answers_is_counted_in_process_after_the_checks_timeout():
    async def accept_and_stay_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads what it is sent until the client goes, and answers nothing

    silent = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    limiter = RateLimiter.connect(f"redis://127.0.0.1:{port}/0", window_s=2, retry_s=5)
    failures = LIMITER_FAILURES.labels("rate")._value.get()
    started = time.monotonic()
    async with silent:
        verdict = await limiter.spend("tenant", "reads", rate=5)
        waited_s = time.monotonic() - started
        # Redis counts as down for `retry_s`: the next check does not wait on it again.
        again = await limiter.spend("tenant", "reads", rate=5)

    assert (verdict.allowed, verdict.remaining) == (True, 9)
    assert (again.allowed, again.remaining) == (True, 8)
    assert REDIS_TIMEOUT_S <= waited_s < REDIS_TIMEOUT_S + 1
    assert time.monotonic() - started - waited_s < 0.5
    assert LIMITER_FAILURES.labels("rate")._value.get() == failures + 1
