"""The limits as route dependencies, and the middleware that writes each response's RateLimit fields."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import SecurityScopes
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixtools_gateway.api.deps import BearerCredentials, KeyHeader, Resources, authenticated, caller, tenant_of
from pixtools_gateway.early_refusals import RefusalMemory
from pixtools_gateway.errors import RateLimited
from pixtools_gateway.handlers.tenants import Caller
from pixtools_gateway.limiting import Limiting, Spent, rate_limit_headers
from pixtools_gateway.security import JOBS_WRITE

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


async def submitting_tenant(
    request: Request, security_scopes: SecurityScopes, bearer: BearerCredentials, x_api_key: KeyHeader
) -> uuid.UUID:
    """The submitting tenant, authenticated with the route's scopes, after one submission of its is spent.

    The submit route is the busiest write, and FastAPI solves every dependency node of a request anew (a few tens
    of microseconds each): the limit, the limiter, the caller twice (without and with the scopes), the tenant and
    the shared resources were about a dozen nodes. This is one node with only the two credential headers below
    it, which also declare the route's security schemes and scopes in the OpenAPI document as before. Unlike
    those separate dependencies, the scopes and the tenant are checked before the submission is spent, so a
    credential refused with 403 spends nothing. As before, it runs before the body is read, so a refused burst
    costs no upload.
    """
    shared: Resources = request.app.state.resources
    who = await authenticated(request, security_scopes.scopes, shared, bearer, x_api_key)
    tenant = tenant_of(who)
    remember(request, await _spend(request, request.app.state.limiting, tenant, "submissions"))
    return tenant


SubmittingTenant = Annotated[uuid.UUID, Security(submitting_tenant, scopes=[JOBS_WRITE])]
"""The calling tenant, with the `jobs:write` scope, having spent one submission (the submit route's only
dependency besides its headers)."""


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
