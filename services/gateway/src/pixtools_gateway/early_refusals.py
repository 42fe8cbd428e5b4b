"""Repeating a rate-limit refusal cheaply while it holds, so a tenant's burst costs other tenants little.

Once a request is refused for a route class, the same credentials get the same answer until the window's
`Retry-After` passes, straight from a pure ASGI middleware: no routing, no authentication, no Redis round trip.
A burst of thousands of refused requests then costs the event loop a dictionary lookup each, and other
tenants' requests do not queue behind the full work of refusing them. The memory is per process and only
repeats what the shared limiter answered; a request after the deadline asks the limiter again.

A client that ignores `Retry-After` and sends again at once would still set its own pace by how fast the gateway
answers it: thousands of cheap refusals a second are thousands of heads parsed and answers written on the one
event loop. So a repeated refusal is held (a tarpit) until its `Retry-After` passes, at most `hold_s`, before it
is answered: the client pays in its own time rather than in the gateway's CPU, and since it sends nothing on that
connection while it waits for the answer, the connection is not read either. A held request costs a sleeping
task; at most `max_held` are held at once per process, and past that a refusal is answered at once as before.

Holds that reach the refusal's deadline end at moments spread over the `spread_s` after it, not all at that
deadline: a client's connections held together would otherwise be answered together and send again together, a
clump of heads parsed and requests routed at once on the one event loop, and of admissions once the window frees,
which is where another tenant's slowest requests were found waiting (docs/benchmarks.md, "isol2"). The first of
the spread re-sends asks the limiter; once it refuses, the rest are repeated refusals again.

The fair share (`FairShare`) asks `refusal` again when a request it parked gets its turn, so that the requests of
a flood parked before the limiter's first refusal are held and answered from the memory, outside the share,
instead of each going through the whole route to be refused.
"""

import asyncio
import functools
import hashlib
import math
import random
import time
from dataclasses import dataclass

from prometheus_client import Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from pixtools_gateway.errors import RateLimited, problem_response
from pixtools_gateway.limiting import REFUSED

_MAX_REMEMBERED = 10_000
HELD = Gauge("pixtools_http_refusals_held", "Repeated 429 refusals held before their answer (the tarpit).")
_TENANT_PREFIXES = ("/v1/jobs", "/v1/batches", "/v1/webhooks")


@dataclass(frozen=True)
class Refusal:
    """A refusal to repeat until `until` (monotonic seconds)."""

    until: float
    policy: str
    detail: str


def route_class_of(method: str, path: str) -> str | None:
    """The rate-limited class a request falls in, as far as its method and path tell; None when they do not."""
    if method == "POST" and path == "/v1/jobs":
        return "submissions"
    if path.endswith("/events") or (method == "POST" and path == "/v1/batches"):
        return None  # streams have their own limit; a batch's cost depends on its body
    return "reads" if path.startswith(_TENANT_PREFIXES) else None


_CREDENTIAL = "pixtools.credential"


def credential_of(scope: Scope) -> bytes | None:
    """A digest of the request's API key or token header, never the key itself; worked out once per request."""
    if _CREDENTIAL not in scope:
        scope[_CREDENTIAL] = next(
            (
                hashlib.blake2b(name + b":" + value, digest_size=16).digest()
                for name, value in scope["headers"]
                if name in (b"authorization", b"x-api-key")
            ),
            None,
        )
    digest: bytes | None = scope[_CREDENTIAL]
    return digest


class RefusalMemory:
    """Refusals by (credential digest, route class), kept until their `Retry-After` passes."""

    def __init__(self) -> None:
        self._refusals: dict[tuple[bytes, str], Refusal] = {}

    def remember(self, scope: Scope, route_class: str, retry_after_s: int, policy: str, detail: str) -> None:
        """Repeat this refusal to the same credentials for `retry_after_s`, if the path says the same class."""
        credential = credential_of(scope)
        if credential is None or route_class_of(scope["method"], scope["path"]) != route_class:
            return
        if len(self._refusals) >= _MAX_REMEMBERED:
            now = time.monotonic()
            self._refusals = {key: refusal for key, refusal in self._refusals.items() if refusal.until > now}
        until = time.monotonic() + retry_after_s
        self._refusals[(credential, route_class)] = Refusal(until, policy, detail)

    def recall(self, scope: Scope) -> tuple[str, Refusal] | None:
        """The refusal still holding for this request's credentials and class, if any."""
        route_class = route_class_of(scope["method"], scope["path"])
        credential = credential_of(scope) if route_class else None
        if route_class is None or credential is None:
            return None
        refusal = self._refusals.get((credential, route_class))
        if refusal is None or refusal.until <= time.monotonic():
            return None
        return route_class, refusal


class HeldRefusals:
    """The repeated refusals of one gateway process: what the memory still refuses, held, then answered 429."""

    def __init__(self, memory: RefusalMemory, *, hold_s: float = 0.0, spread_s: float = 0.0, max_held: int = 0) -> None:
        self._memory = memory
        self._hold_s = hold_s
        self._spread_s = spread_s
        self._max_held = max_held
        self._held = 0

    @property
    def held(self) -> int:
        """Refusals being held right now (for tests and metrics)."""
        return self._held

    def refusal(self, scope: Scope) -> ASGIApp | None:
        """The held 429 to answer this request with, when a refusal still holds for its credentials and class."""
        recalled = self._memory.recall(scope) if scope["type"] == "http" else None
        return None if recalled is None else functools.partial(self._answer, *recalled)

    def _delay(self, refusal: Refusal) -> float:
        """Until the refusal's deadline and a moment of the spread after it, or `hold_s` when that comes first."""
        to_deadline = refusal.until - time.monotonic()
        if to_deadline > self._hold_s:
            return self._hold_s
        return max(0.0, to_deadline) + random.uniform(0.0, self._spread_s)

    async def _hold(self, refusal: Refusal) -> None:
        """Wait `_delay`, unless nothing is to be held or `max_held` refusals are already waiting."""
        if self._hold_s <= 0 or self._held >= self._max_held:
            return
        delay = self._delay(refusal)
        if delay <= 0:
            return
        self._held += 1
        HELD.inc()
        try:
            await asyncio.sleep(delay)
        finally:
            self._held -= 1
            HELD.dec()

    async def _answer(self, route_class: str, refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
        REFUSED.labels(route_class).inc()
        await self._hold(refusal)
        retry_after_s = max(1, math.ceil(refusal.until - time.monotonic()))
        headers = {
            "Retry-After": str(retry_after_s),
            "RateLimit-Policy": refusal.policy,
            "RateLimit": f'"{route_class}";r=0;t={retry_after_s}',
        }
        answer = problem_response(429, RateLimited.slug, RateLimited.title, refusal.detail, headers=headers)
        await answer(scope, receive, send)


class EarlyRefusals:
    """Pure ASGI middleware answering 429 to credentials refused a moment ago for the same class, after a hold."""

    def __init__(self, app: ASGIApp, refusals: HeldRefusals) -> None:
        self.app = app
        self._refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusals.refusal(scope)
        await (self.app if refusal is None else refusal)(scope, receive, send)
