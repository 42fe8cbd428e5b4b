"""The limits as route dependencies, and the middleware that writes each response's RateLimit fields."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixtools_gateway.api.deps import caller
from pixtools_gateway.early_refusals import RefusalMemory
from pixtools_gateway.errors import RateLimited
from pixtools_gateway.handlers.tenants import Caller
from pixtools_gateway.limiting import Limiting, Spent, rate_limit_headers

_SPENT = "rate_limit_spent"
Event = TypeVar("Event")


async def limiting(request: Request) -> Limiting:
    """The app's limiter (async, so FastAPI calls it on the loop instead of a thread-pool hop per request)."""
    found: Limiting = request.app.state.limiting
    return found


AppLimits = Annotated[Limiting, Depends(limiting)]


async def spend_read(request: Request, limits: AppLimits, who: Annotated[Caller, Depends(caller)]) -> None:
    """Spend one read of the calling tenant's; admin keys have no tenant and are refused by the route."""
    if who.tenant_id is not None:
        remember(request, await _spend(request, limits, who.tenant_id, "reads"))


async def spend_submission(request: Request, limits: AppLimits, who: Annotated[Caller, Depends(caller)]) -> None:
    """Spend one submission before the body is read, so a refused burst costs no upload."""
    if who.tenant_id is not None:
        remember(request, await _spend(request, limits, who.tenant_id, "submissions"))


async def _spend(request: Request, limits: Limiting, tenant_id: uuid.UUID, route_class: str) -> Spent:
    """Spend one request; a refusal is also remembered, for `EarlyRefusals` to repeat while it holds."""
    try:
        return await limits.spend(tenant_id, route_class)
    except RateLimited as refused:
        headers = refused.headers or {}
        memory: RefusalMemory = request.app.state.refusals
        memory.remember(
            request.scope, route_class, int(headers["Retry-After"]), headers["RateLimit-Policy"], refused.detail
        )
        raise


ReadLimited = Depends(spend_read)
SubmissionLimited = Depends(spend_submission)


def remember(request: Request, spent: Spent) -> None:
    """Keep what the request spent, for `RateLimitHeaders` to write into the response."""
    request.state.rate_limit_spent = spent


async def held(limits: Limiting, tenant_id: uuid.UUID, slot: str, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """The stream's events; its slot is freed when the stream ends, fails or the client goes away."""
    try:
        async for event in events:
            yield event
    finally:
        await limits.slots.release(str(tenant_id), slot)


class RateLimitHeaders:
    """Pure ASGI middleware adding `RateLimit-Policy` and `RateLimit` to responses of limited routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_fields(message: Message) -> None:
            spent = scope.get("state", {}).get(_SPENT)
            if message["type"] == "http.response.start" and spent is not None:
                headers = MutableHeaders(scope=message)
                for name, value in rate_limit_headers(spent).items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_fields)
