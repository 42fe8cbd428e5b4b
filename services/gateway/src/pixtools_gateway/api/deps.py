"""Request dependencies, as Annotated aliases so endpoint signatures read like prose."""

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixtools_gateway.access_tokens import AccessTokens, InvalidToken, looks_like_token
from pixtools_gateway.adapters.key_cache import Caller, KeyCache
from pixtools_gateway.adapters.key_usage import KeyUsage
from pixtools_gateway.adapters.notifications import JobNotifications
from pixtools_gateway.errors import Forbidden, Unauthorized
from pixtools_gateway.handlers.tenants import find_caller, find_caller_by_id
from pixtools_gateway.output_links import OutputLinks
from pixtools_gateway.security import ADMIN, JOBS_READ, JOBS_WRITE, KEYS_MANAGE, WEBHOOKS_MANAGE, hash_api_key
from pixtools_gateway.settings import GatewaySettings
from pixtools_platform.blobstore import BlobStore


@dataclass
class Resources:
    """What the app opens once at start-up and shares between requests.

    `reader` runs single statements in autocommit, so they cost one round trip and no BEGIN/ROLLBACK: the reads,
    and the one INSERT of a submitted job.
    """

    settings: GatewaySettings
    sessions: async_sessionmaker[AsyncSession]
    reader: AsyncEngine
    blobs: BlobStore
    notifications: JobNotifications
    key_cache: KeyCache
    key_usage: KeyUsage
    access_tokens: AccessTokens
    links: OutputLinks

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


# The two ways of sending a credential, declared as OpenAPI security schemes; either one is enough.
_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="A tenant or admin API key."
)
_BEARER = HTTPBearer(
    scheme_name="Bearer",
    bearerFormat="API key or JWT",
    auto_error=False,
    description="An API key, or an access token from `POST /v1/auth/token` (a JWT), as `Authorization: Bearer`.",
)


_CALLER = "pixtools.caller"
"""Where a request keeps its authenticated caller, keyed by the credential it came with."""


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
"""The `Authorization: Bearer` credential, if sent (declared as the `Bearer` security scheme)."""
KeyHeader = Annotated[str | None, Depends(_KEY_HEADER)]
"""The `X-API-Key` header, if sent (declared as the `ApiKey` security scheme)."""


async def caller(
    request: Request, security_scopes: SecurityScopes, shared: Shared, bearer: BearerCredentials, x_api_key: KeyHeader
) -> Caller:
    """Authenticate the key or access token from `Authorization: Bearer` or `X-API-Key`; check the route's scopes."""
    return await authenticated(request, security_scopes.scopes, shared, bearer, x_api_key)


async def authenticated(
    request: Request,
    scopes: list[str],
    shared: Resources,
    bearer: HTTPAuthorizationCredentials | None,
    x_api_key: str | None,
) -> Caller:
    """The caller of a request's credential, authenticated once per request, with `scopes` checked on every ask."""
    credential = bearer.credentials.strip() if bearer is not None else x_api_key
    if not credential:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'", headers=challenge())
    # A limited route asks for its caller twice (its rate limit without scopes, its tenant with them), and FastAPI
    # caches a dependency per scope set: the second ask reuses the first's authentication.
    known: tuple[str, Caller] | None = request.scope.get(_CALLER)
    if known is not None and known[0] == credential:
        who = known[1]
    else:
        if bearer is not None and looks_like_token(credential):
            who = await _token_caller(shared, credential)
        else:
            who = await _key_caller(shared, credential)
        request.scope[_CALLER] = (credential, who)
    for scope in scopes:
        if scope not in who.scopes:
            raise Forbidden(
                f"this operation needs the '{scope}' scope, which this credential does not have",
                headers=challenge(error="insufficient_scope", scope=scope),
            )
    shared.key_usage.touch(who.key_id)
    return who


async def _key_caller(shared: Resources, key: str) -> Caller:
    key_hash = hash_api_key(key)
    found = shared.key_cache.by_hash(key_hash)
    if found is not None and found.live():
        return found
    since = shared.key_cache.generation
    async with shared.sessions() as opened:
        found = await find_caller(opened, key_hash=key_hash)
    if found is None:
        raise Unauthorized("the API key is not valid, was revoked or has expired", headers=challenge())
    shared.key_cache.remember(found, key_hash=key_hash, since=since)
    return found


async def _token_caller(shared: Resources, token: str) -> Caller:
    """An access token's caller: its signature and claims, then its key's state (revocation ends the token)."""
    try:
        claims = shared.access_tokens.verify(token)
    except InvalidToken as error:
        raise Unauthorized(str(error), headers=challenge(error="invalid_token")) from error
    key = shared.key_cache.by_id(claims.key_id)
    if key is None or not key.live():
        since = shared.key_cache.generation
        async with shared.sessions() as opened:
            key = await find_caller_by_id(opened, key_id=claims.key_id)
        if key is None:
            raise Unauthorized(
                "the access token's API key was revoked or has expired", headers=challenge(error="invalid_token")
            )
        shared.key_cache.remember(key, key_hash=None, since=since)
    return Caller(
        key_id=key.key_id,
        tenant_id=key.tenant_id,
        scopes=key.scopes & claims.scopes,
        expires_at=key.expires_at,
        via_token=True,
    )


def challenge(**params: str) -> dict[str, str]:
    """The `WWW-Authenticate` header of a refusal (RFC 6750 error and scope when given)."""
    extra = "".join(f', {name}="{value}"' for name, value in params.items())
    return {"WWW-Authenticate": f'Bearer realm="pixtools"{extra}'}


async def tenant_id(who: Annotated[Caller, Depends(caller)]) -> uuid.UUID:
    """The calling tenant; admin keys have none and may not use tenant endpoints."""
    return tenant_of(who)


def tenant_of(who: Caller) -> uuid.UUID:
    """The caller's tenant; a 403 for an admin key, which has none."""
    if who.tenant_id is None:
        raise Forbidden("this endpoint needs a tenant API key")
    return who.tenant_id


# A route's scope is declared by the alias it takes: FastAPI passes the scopes down to `caller`, which checks
# them, and lists them in the operation's OpenAPI security requirements.
JobsReader = Annotated[uuid.UUID, Security(tenant_id, scopes=[JOBS_READ])]
"""The calling tenant, with the `jobs:read` scope."""
JobsWriter = Annotated[uuid.UUID, Security(tenant_id, scopes=[JOBS_WRITE])]
"""The calling tenant, with the `jobs:write` scope."""
KeysManager = Annotated[uuid.UUID, Security(tenant_id, scopes=[KEYS_MANAGE])]
"""The calling tenant, with the `keys:manage` scope."""
WebhooksManager = Annotated[uuid.UUID, Security(tenant_id, scopes=[WEBHOOKS_MANAGE])]
"""The calling tenant, with the `webhooks:manage` scope."""
TenantId = JobsReader
"""The calling tenant, for reads (`jobs:read`)."""
AnyCaller = Annotated[Caller, Depends(caller)]
"""Any valid key or access token, whatever its scopes."""
ADMIN_ONLY = Security(caller, scopes=[ADMIN])
"""The dependency of admin routes: the `admin` scope, which only admin keys hold."""


_IDEMPOTENCY_KEY_MAX = 200
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=_IDEMPOTENCY_KEY_MAX,
        description="Repeating a submission with the same key answers with the first result.",
    ),
]
"""The `Idempotency-Key` header parameter (the busy job submission reads it with `idempotency_key` instead)."""


def idempotency_key(request: Request) -> str | None:
    """The request's `Idempotency-Key`, refused with FastAPI's 422 when over 200 characters, as `IdempotencyKey` says.

    Read here rather than as a header parameter: FastAPI's solving of the submit route's two header parameters cost
    about 15 µs per request on a quiet host (`bench/gateway/header_params_cost.py`), reading them by hand about 1.
    """
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > _IDEMPOTENCY_KEY_MAX:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("header", "idempotency-key"),
                    "msg": f"String should have at most {_IDEMPOTENCY_KEY_MAX} characters",
                    "input": key,
                    "ctx": {"max_length": _IDEMPOTENCY_KEY_MAX},
                }
            ]
        )
    return key


LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", max_length=200, description="The `id` of the last event received, to resume."),
]
