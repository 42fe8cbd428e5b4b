"""Access and refresh tokens: a session starts from an API key; each refresh token is used once.

Refresh tokens rotate: using one marks it used (a conditional UPDATE, so two concurrent uses cannot both
win) and returns a new pair in the same family. A used token presented again means someone kept a copy, so
the whole family is revoked: the thief's session and the victim's both end.

A family also has an absolute lifetime from its first token: a refresh past it answers 401 and revokes the
family, so a session kept alive by regular refreshes still ends, and the client goes back to its API key.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_db import RefreshToken
from pixtools_gateway.access_tokens import AccessTokens
from pixtools_gateway.adapters.key_cache import Caller
from pixtools_gateway.handlers.tenants import find_caller_by_id
from pixtools_gateway.security import hash_api_key, new_refresh_token


@dataclass(frozen=True)
class TokenPair:
    """A signed access token and the refresh token that replaces it."""

    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Refused:
    """Why a refresh token was not accepted."""

    reason: str


async def start_session(
    session: AsyncSession, *, caller: Caller, tokens: AccessTokens, refresh_lifetime: timedelta
) -> TokenPair:
    """Tokens for an API key's caller, opening a new refresh-token family."""
    return await _pair(session, caller=caller, family_id=uuid.uuid4(), tokens=tokens, lifetime=refresh_lifetime)


async def refresh_session(
    session: AsyncSession,
    *,
    refresh_token: str,
    tokens: AccessTokens,
    refresh_lifetime: timedelta,
    family_lifetime: timedelta,
) -> TokenPair | Refused:
    """Use a refresh token once for a new pair; a reused one, or one past its family's lifetime, revokes its family.

    Commit either outcome.
    """
    now = datetime.now(UTC)
    token_hash = hash_api_key(refresh_token)
    used = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(RefreshToken.key_id, RefreshToken.family_id)
        )
    ).one_or_none()
    if used is None:
        known = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
        if known is not None and known.used_at is not None:
            await _revoke_family(session, family_id=known.family_id, now=now)
            return Refused("the refresh token was already used: every token of its session is now revoked")
        return Refused("the refresh token is not valid, has expired or was revoked")
    key_id, family_id = used
    started = await session.scalar(select(func.min(RefreshToken.created_at)).where(RefreshToken.family_id == family_id))
    if started is not None and now - started >= family_lifetime:
        await _revoke_family(session, family_id=family_id, now=now)
        return Refused(
            f"the session is older than its limit of {family_lifetime.total_seconds():g} s: "
            "start a new one with the API key"
        )
    caller = await find_caller_by_id(session, key_id=key_id)
    if caller is None:
        await _revoke_family(session, family_id=family_id, now=now)
        return Refused("the API key of this session was revoked or has expired")
    return await _pair(session, caller=caller, family_id=family_id, tokens=tokens, lifetime=refresh_lifetime)


async def _pair(
    session: AsyncSession, *, caller: Caller, family_id: uuid.UUID, tokens: AccessTokens, lifetime: timedelta
) -> TokenPair:
    refresh_token = new_refresh_token()
    session.add(
        RefreshToken(
            key_id=caller.key_id,
            family_id=family_id,
            token_hash=hash_api_key(refresh_token),
            expires_at=datetime.now(UTC) + lifetime,
        )
    )
    await session.flush()
    access_token = tokens.issue(key_id=caller.key_id, tenant_id=caller.tenant_id, scopes=sorted(caller.scopes))
    return TokenPair(access_token=access_token, refresh_token=refresh_token, expires_in=tokens.lifetime_s)


async def _revoke_family(session: AsyncSession, *, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
