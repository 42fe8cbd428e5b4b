"""Repeating a rate-limit refusal cheaply while it holds, so a tenant's burst costs other tenants little.

Once a request is refused for a route class, the same credentials get the same answer until the window's
`Retry-After` passes, straight from a pure ASGI middleware: no routing, no authentication, no Redis round trip.
A burst of thousands of refused requests then costs the event loop a dictionary lookup each, and other
tenants' requests do not queue behind the full work of refusing them. The memory is per process and only
repeats what the shared limiter answered; a request after the deadline asks the limiter again.
"""

import hashlib
import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from pixtools_gateway.errors import RateLimited, problem_response
from pixtools_gateway.limiting import REFUSED

_MAX_REMEMBERED = 10_000
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


class EarlyRefusals:
    """Pure ASGI middleware answering 429 at once to credentials refused a moment ago for the same class."""

    def __init__(self, app: ASGIApp, *, memory: RefusalMemory) -> None:
        self.app = app
        self._memory = memory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        recalled = self._memory.recall(scope) if scope["type"] == "http" else None
        if recalled is None:
            await self.app(scope, receive, send)
            return
        route_class, refusal = recalled
        REFUSED.labels(route_class).inc()
        retry_after_s = max(1, math.ceil(refusal.until - time.monotonic()))
        headers = {
            "Retry-After": str(retry_after_s),
            "RateLimit-Policy": refusal.policy,
            "RateLimit": f'"{route_class}";r=0;t={retry_after_s}',
        }
        answer = problem_response(429, RateLimited.slug, RateLimited.title, refusal.detail, headers=headers)
        await answer(scope, receive, send)
