"""Tenants, their API keys and their webhook signing secrets."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_db import ApiKey, Tenant
from pixtools_gateway.adapters.key_cache import Caller
from pixtools_gateway.security import (
    ADMIN,
    TENANT_SCOPES,
    hash_api_key,
    key_prefix,
    new_api_key,
    new_webhook_secret,
)

DEV_TENANT = "dev"


async def create_tenant(session: AsyncSession, *, name: str) -> tuple[Tenant, str]:
    """Create a tenant with a webhook secret and a first API key (every tenant scope); returns the key, once."""
    tenant = Tenant(id=uuid.uuid4(), name=name, webhook_secret=new_webhook_secret())
    session.add(tenant)
    await session.flush()
    key = await add_api_key(session, tenant_id=tenant.id, name="first key")
    return tenant, key


async def add_api_key(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | None,
    name: str | None = None,
    scopes: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    key: str | None = None,
) -> str:
    """Store a new key's hash; returns the key in clear. Without a tenant it is an admin key."""
    _row, key = await create_api_key(
        session, tenant_id=tenant_id, name=name, scopes=scopes, expires_at=expires_at, key=key
    )
    return key


async def create_api_key(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | None,
    name: str | None = None,
    scopes: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    key: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; returns its row and the key in clear. Tenant keys default to every tenant scope."""
    granted = [ADMIN] if tenant_id is None else list(scopes or TENANT_SCOPES)
    key = key or new_api_key(ADMIN if tenant_id is None else "tenant")
    row = ApiKey(
        tenant_id=tenant_id,
        name=name or ("admin key" if tenant_id is None else "key"),
        key_hash=hash_api_key(key),
        prefix=key_prefix(key),
        scopes=granted,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row, key


async def ensure_dev_tenant(session: AsyncSession, *, key: str) -> uuid.UUID:
    """Create the local development tenant and its key if they are missing."""
    tenant = await session.scalar(select(Tenant).where(Tenant.name == DEV_TENANT))
    if tenant is None:
        tenant = Tenant(id=uuid.uuid4(), name=DEV_TENANT, webhook_secret=new_webhook_secret())
        session.add(tenant)
        await session.flush()
    if await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key))) is None:
        await add_api_key(session, tenant_id=tenant.id, name="development key", key=key)
    return tenant.id


def _usable() -> ColumnElement[bool]:
    return and_(ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > datetime.now(UTC)))


def _caller(row: ApiKey) -> Caller:
    return Caller(key_id=row.id, tenant_id=row.tenant_id, scopes=frozenset(row.scopes), expires_at=row.expires_at)


async def find_caller(session: AsyncSession, *, key_hash: str) -> Caller | None:
    """Resolve a key's hash to its caller; None for unknown, revoked or expired keys."""
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, _usable()))
    return None if row is None else _caller(row)


async def find_caller_by_id(session: AsyncSession, *, key_id: uuid.UUID) -> Caller | None:
    """The caller of a key by its id (an access token's `sub`); None once it is revoked or expired."""
    row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, _usable()))
    return None if row is None else _caller(row)


async def rotate_webhook_secret(session: AsyncSession, *, tenant_id: uuid.UUID, grace: timedelta) -> Tenant:
    """Replace the signing secret; the old one keeps signing alongside it for the grace period."""
    tenant = await session.get_one(Tenant, tenant_id, with_for_update=True)
    tenant.previous_webhook_secret = tenant.webhook_secret
    tenant.previous_secret_expires_at = datetime.now(UTC) + grace
    tenant.webhook_secret = new_webhook_secret()
    await session.flush()
    return tenant
