"""When to send a request again: connection errors, 429 and 503, honouring `Retry-After`, with capped backoff.

Only requests that are safe to repeat are retried: reads, cancels, and submissions carrying an idempotency key
(the SDK gives every submission one). A connection that could not even be opened is safe to retry for any request.
"""

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_RETRY_STATUSES = frozenset({429, 503})


def retry_after_seconds(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """`Retry-After` in seconds, whether sent as a number of seconds or an HTTP date; None when absent or unreadable."""
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def repeatable(request: httpx.Request) -> bool:
    """Whether sending the request twice cannot do the work twice."""
    return request.method in _IDEMPOTENT_METHODS or "idempotency-key" in request.headers


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `attempts` tries in all; waits grow from `base_delay_s` by `factor`, with jitter, capped at `max_delay_s`.

    A `Retry-After` longer than `max_retry_after_s` is not waited out: the error is raised at once, so a caller
    is never blocked for minutes behind a quota.
    """

    attempts: int = 4
    base_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0
    jitter: float = 0.25

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number `attempt` (1-based), without any server hint."""
        delay = min(self.max_delay_s, self.base_delay_s * self.factor ** (attempt - 1))
        return delay * (1 - self.jitter * random.random())

    def delay_after_response(self, request: httpx.Request, response: httpx.Response, attempt: int) -> float | None:
        """How long to wait before trying again after this answer, or None to stop and report it."""
        if response.status_code not in _RETRY_STATUSES or attempt >= self.attempts:
            return None
        # A 429 is a refusal before any work; a 503 may come from a proxy after the request went through.
        if response.status_code == 503 and not repeatable(request):
            return None
        hinted = retry_after_seconds(response.headers)
        if hinted is None:
            return self.backoff(attempt)
        return hinted if hinted <= self.max_retry_after_s else None

    def delay_after_error(self, request: httpx.Request, error: httpx.TransportError, attempt: int) -> float | None:
        """How long to wait before trying again after a transport error, or None to stop and raise it."""
        if attempt >= self.attempts:
            return None
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout) or repeatable(request):
            return self.backoff(attempt)
        return None


NO_RETRIES = RetryPolicy(attempts=1)
"""A policy that never retries."""
