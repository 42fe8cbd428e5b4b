"""Request dependencies, as Annotated aliases so endpoint signatures read like prose."""

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixtools_gateway.adapters.notifications import JobNotifications
from pixtools_gateway.errors import Forbidden, Unauthorized
from pixtools_gateway.handlers.tenants import Caller, find_caller
from pixtools_gateway.output_links import OutputLinks
from pixtools_gateway.settings import GatewaySettings
from pixtools_platform.blobstore import BlobStore


@dataclass
class Resources:
    """What the app opens once at start-up and shares between requests.

    `reader` runs single-statement reads in autocommit, so they cost one round trip and no BEGIN/ROLLBACK.
    """

    settings: GatewaySettings
    sessions: async_sessionmaker[AsyncSession]
    reader: AsyncEngine
    blobs: BlobStore
    notifications: JobNotifications
    links: OutputLinks
    key_cache: dict[str, tuple[float, Caller]] = field(default_factory=dict)

    async def output_url(self, base_url: str, job_id: uuid.UUID, output: Mapping[str, Any]) -> str:
        """An output's download URL that needs no key: presigned, or the gateway's signed link under `base_url`."""
        presigned = await self.blobs.presigned_url(output["key"], self.settings.presign_expiry_s)
        # Formatting the route is far cheaper than url_for, and this runs once per output listed.
        return presigned or base_url + self.links.sign(job_id, output["id"])


async def resources(request: Request) -> Resources:
    """The app's shared resources."""
    found: Resources = request.app.state.resources
    return found


Shared = Annotated[Resources, Depends(resources)]


async def session(shared: Shared) -> AsyncIterator[AsyncSession]:
    """A database session for the request."""
    async with shared.sessions() as opened:
        yield opened


Session = Annotated[AsyncSession, Depends(session)]


# The two ways of sending a key, declared as OpenAPI security schemes; either one is enough.
_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="A tenant or admin API key."
)
_BEARER = HTTPBearer(
    scheme_name="Bearer", auto_error=False, description="The same API key as `Authorization: Bearer <key>`."
)


async def caller(
    shared: Shared,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    x_api_key: Annotated[str | None, Depends(_KEY_HEADER)],
) -> Caller:
    """Authenticate the API key from `Authorization: Bearer` or `X-API-Key`."""
    key = bearer.credentials.strip() if bearer is not None else x_api_key
    if not key:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'", headers=_challenge())
    cached = shared.key_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    async with shared.sessions() as opened:
        found = await find_caller(opened, key=key)
    if found is None:
        raise Unauthorized("the API key is not valid", headers=_challenge())
    shared.key_cache[key] = (time.monotonic() + shared.settings.auth_cache_s, found)
    return found


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="pixtools"'}


async def tenant_id(who: Annotated[Caller, Depends(caller)]) -> uuid.UUID:
    """The calling tenant; admin keys have none and may not use tenant endpoints."""
    if who.tenant_id is None:
        raise Forbidden("this endpoint needs a tenant API key")
    return who.tenant_id


TenantId = Annotated[uuid.UUID, Depends(tenant_id)]


async def require_admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """The caller of an admin key; tenant keys may not use admin endpoints."""
    if who.tenant_id is not None or who.scope != "admin":
        raise Forbidden("this endpoint needs an admin API key")
    return who


AdminCaller = Annotated[Caller, Depends(require_admin)]


IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, description="Repeating a submission with the same key answers with the first result."),
]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", max_length=200, description="The `id` of the last event received, to resume."),
]
