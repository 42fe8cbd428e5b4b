"""Fetching a job's source URL: safe single attempts from the platform, retried here with backoff and jitter."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pixtools_ingest.errors import SourceUnreachable
from pixtools_platform.fetch import Fetched, FetchError, FetchLimits, fetch_url
from pixtools_platform.netguard import AddressPolicy


@dataclass(frozen=True)
class SourceFetching:
    """Where a source fetch may go, what one attempt may cost, and how transient failures are retried."""

    addresses: AddressPolicy = field(default_factory=AddressPolicy)
    limits: FetchLimits = field(default_factory=FetchLimits)
    attempts: int = 3
    backoff_s: float = 0.5
    jitter: float = 0.5

    def delay_s(self, failed_attempts: int, draw: float) -> float:
        """Seconds before the next attempt: doubling per failure, shortened by up to `jitter` (draw is in [0, 1))."""
        return self.backoff_s * 2 ** (failed_attempts - 1) * (1 - self.jitter * draw)


async def fetch_with_retries(
    url: str,
    fetching: SourceFetching,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> tuple[Fetched, int]:
    """Fetch `url`, retrying transient failures; return the body and the attempts taken, or raise SourceUnreachable."""
    draw = (rng or random).random
    attempt = 1
    while True:
        try:
            return await fetch_url(url, fetching.addresses, fetching.limits), attempt
        except FetchError as error:
            if not error.retryable or attempt >= fetching.attempts:
                raise SourceUnreachable(error.code, str(error) or type(error).__name__, attempt) from error
        await sleep(fetching.delay_s(attempt, draw()))
        attempt += 1
