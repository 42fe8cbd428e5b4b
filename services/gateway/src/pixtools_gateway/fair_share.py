"""A fair share of the event loop per credential: each key or token has a few requests in progress at most.

A rate limit bounds how many requests a tenant gets admitted per second, not how many it keeps in progress at
once. A client holding a hundred connections open keeps a hundred requests on the gateway's one event loop, and
every other tenant's request then waits its turn behind all of them, refused or not. This pure ASGI layer, outside
every other, lets `per_credential` requests of each credential proceed at a time and parks the rest on a
semaphore, where a parked request costs the loop nothing until its turn. Another tenant's request then waits behind
a handful of the flood's requests, not behind the flood.

Nothing is refused here: a parked request proceeds as soon as one of its credential's requests ends, and the rate
limits decide what is admitted. Event streams and `Prefer: wait` submissions, which stay open by design, take no
place (streams have their own limit on how many may be open).

A flood's requests parked before the limiter first refused it would each still go through the whole route to be
refused when their turn came: about a thousand of a 5000-request burst's refusals, in a run at each window's turn
(docs/benchmarks.md, "isol2"). So when a parked request's turn comes, `refusal` is asked again; a request refused
meanwhile gives its place back and gets that refusal (held, in `early_refusals`) instead of the route.
"""

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from pixtools_gateway.early_refusals import credential_of


def _holds_open(scope: Scope) -> bool:
    """Requests that stay open by design: event streams, and submissions that asked to wait for their job."""
    if scope["path"].endswith("/events"):
        return True
    return scope["method"] == "POST" and any(
        name == b"prefer" and b"wait" in value.lower() for name, value in scope["headers"]
    )


class FairShare:
    """Pure ASGI middleware: at most `per_credential` requests of one credential in progress at once."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_credential: int,
        refusal: Callable[[Scope], ASGIApp | None] = lambda scope: None,
    ) -> None:
        self.app = app
        self._per_credential = per_credential
        self._refusal = refusal
        self._gates: dict[bytes, asyncio.Semaphore] = {}
        self._users: dict[bytes, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        credential = credential_of(scope) if scope["type"] == "http" else None
        if credential is None or _holds_open(scope):
            await self.app(scope, receive, send)
            return
        gate = self._gates.get(credential)
        if gate is None:
            gate = self._gates[credential] = asyncio.Semaphore(self._per_credential)
        self._users[credential] = self._users.get(credential, 0) + 1
        refusal = None
        try:
            parked = gate.locked()
            async with gate:
                refusal = self._refusal(scope) if parked else None
                if refusal is None:
                    await self.app(scope, receive, send)
        finally:
            # A credential's gate lives while any of its requests does, so the table holds active clients only.
            remaining = self._users[credential] - 1
            if remaining:
                self._users[credential] = remaining
            else:
                del self._users[credential], self._gates[credential]
        if refusal is not None:
            await refusal(scope, receive, send)  # outside the share: a held refusal takes no place

    def in_progress(self, credential: bytes) -> int:
        """How many requests of this credential are in progress or parked (for tests and metrics)."""
        return self._users.get(credential, 0)
