"""Tenants, their API keys and their webhook signing secrets."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_db import ApiKey, Tenant
from pixtools_gateway.security import hash_api_key, new_api_key, new_webhook_secret

DEV_TENANT = "dev"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the tenant (none for admin keys) and the key's scope."""

    tenant_id: uuid.UUID | None
    scope: str


async def create_tenant(session: AsyncSession, *, name: str) -> tuple[Tenant, str]:
    """Create a tenant with a webhook secret and a first API key; returns the key in clear, once."""
    tenant = Tenant(id=uuid.uuid4(), name=name, webhook_secret=new_webhook_secret())
    session.add(tenant)
    await session.flush()
    key = await add_api_key(session, tenant_id=tenant.id)
    return tenant, key


async def add_api_key(
    session: AsyncSession, *, tenant_id: uuid.UUID | None, scope: str = "tenant", key: str | None = None
) -> str:
    """Store a new key's hash; returns the key in clear."""
    key = key or new_api_key(scope)
    session.add(ApiKey(tenant_id=tenant_id, key_hash=hash_api_key(key), prefix=key[:8], scope=scope))
    await session.flush()
    return key


async def ensure_dev_tenant(session: AsyncSession, *, key: str) -> uuid.UUID:
    """Create the local development tenant and its key if they are missing."""
    tenant = await session.scalar(select(Tenant).where(Tenant.name == DEV_TENANT))
    if tenant is None:
        tenant = Tenant(id=uuid.uuid4(), name=DEV_TENANT, webhook_secret=new_webhook_secret())
        session.add(tenant)
        await session.flush()
    if await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key))) is None:
        await add_api_key(session, tenant_id=tenant.id, key=key)
    return tenant.id


async def find_caller(session: AsyncSession, *, key: str) -> Caller | None:
    """Resolve an API key to its caller; None for unknown or revoked keys."""
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None)))
    return None if row is None else Caller(row.tenant_id, row.scope)


async def rotate_webhook_secret(session: AsyncSession, *, tenant_id: uuid.UUID, grace: timedelta) -> Tenant:
    """Replace the signing secret; the old one keeps signing alongside it for the grace period."""
    tenant = await session.get_one(Tenant, tenant_id, with_for_update=True)
    tenant.previous_webhook_secret = tenant.webhook_secret
    tenant.previous_secret_expires_at = datetime.now(UTC) + grace
    tenant.webhook_secret = new_webhook_secret()
    await session.flush()
    return tenant
