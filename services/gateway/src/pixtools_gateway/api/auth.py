"""Access tokens: exchange an API key for a signed token and a refresh token; refresh; publish the JWKS."""

from datetime import timedelta

from fastapi import APIRouter, Response

from pixtools_gateway.api.deps import AnyCaller, Shared, challenge
from pixtools_gateway.api.limits import ReadLimited
from pixtools_gateway.auth_models import JsonWebKeySet, RefreshRequest, TokenResponse
from pixtools_gateway.errors import Forbidden, Unauthorized
from pixtools_gateway.handlers.tokens import Refused, refresh_session, start_session
from pixtools_gateway.openapi import problems

router = APIRouter(tags=["auth"])
# Token answers must not be stored by caches on the way (RFC 6749 section 5.1).
_NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/v1/auth/token",
    response_model=TokenResponse,
    summary="Exchange an API key for tokens",
    responses=problems(429),
    dependencies=[ReadLimited],
)
async def issue_token(who: AnyCaller, shared: Shared, response: Response) -> TokenResponse:
    """A signed access token with the key's scopes, valid for `expires_in` seconds, and a refresh token.

    Any API key may call it; an access token may not (it cannot mint its own successors).
    """
    if who.via_token:
        raise Forbidden("exchange an API key for tokens; use the refresh token to renew an access token")
    async with shared.sessions.begin() as session:
        pair = await start_session(
            session,
            caller=who,
            tokens=shared.access_tokens,
            refresh_lifetime=timedelta(seconds=shared.settings.refresh_token_ttl_s),
        )
    response.headers.update(_NO_STORE)
    return TokenResponse(access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token)


@router.post(
    "/v1/auth/refresh", response_model=TokenResponse, summary="Rotate a refresh token", responses=problems(401, 503)
)
async def refresh_token(body: RefreshRequest, shared: Shared, response: Response) -> TokenResponse:
    """A new access token and refresh token; the one sent is used up.

    Each refresh token works once. Sending one that was already used revokes every token of its session. A
    session (the chain of refresh tokens from one exchange of an API key) ends `PIXTOOLS_REFRESH_FAMILY_LIFETIME_S`
    (30 days) after it started: a refresh past that answers 401, and the client exchanges its API key again.
    """
    async with shared.sessions.begin() as session:
        outcome = await refresh_session(
            session,
            refresh_token=body.refresh_token,
            tokens=shared.access_tokens,
            refresh_lifetime=timedelta(seconds=shared.settings.refresh_token_ttl_s),
            family_lifetime=timedelta(seconds=shared.settings.refresh_family_lifetime_s),
        )
    if isinstance(outcome, Refused):
        raise Unauthorized(outcome.reason, headers=challenge(error="invalid_token"))
    response.headers.update(_NO_STORE)
    return TokenResponse(
        access_token=outcome.access_token, expires_in=outcome.expires_in, refresh_token=outcome.refresh_token
    )


@router.get("/.well-known/jwks.json", response_model=JsonWebKeySet, summary="Public keys of access tokens")
async def read_jwks(shared: Shared, response: Response) -> JsonWebKeySet:
    """The Ed25519 keys that verify access tokens (`kid` in each token's header), previous keys included."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return JsonWebKeySet.model_validate(shared.access_tokens.jwks())
