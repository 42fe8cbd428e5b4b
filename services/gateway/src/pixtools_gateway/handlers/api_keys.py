"""A tenant's API keys: list and revoke; revoking a key also ends its refresh-token families."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pixtools_db import ApiKey, RefreshToken, Tenant


async def list_keys(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[ApiKey]:
    """The tenant's keys, newest first, revoked ones included."""
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return list(rows)


async def revoke_key(session: AsyncSession, *, key_id: uuid.UUID, tenant_id: uuid.UUID | None) -> ApiKey | None:
    """Revoke a key (of this tenant, unless `tenant_id` is None) and its refresh tokens; None if there is none.

    Revoking twice keeps the first revocation time. The table's trigger tells every gateway at commit.
    """
    query = select(ApiKey).where(ApiKey.id == key_id).with_for_update()
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    row = await session.scalar(query)
    if row is None:
        return None
    now = datetime.now(UTC)
    if row.revoked_at is None:
        row.revoked_at = now
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.key_id == key_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.flush()
    return row


async def list_all_keys(session: AsyncSession, *, tenant_name: str | None) -> list[tuple[ApiKey, str | None]]:
    """Every key with its tenant's name (None for admin keys), or only one tenant's keys."""
    query = select(ApiKey, Tenant.name).outerjoin(Tenant, Tenant.id == ApiKey.tenant_id)
    if tenant_name is not None:
        query = query.where(Tenant.name == tenant_name)
    rows = await session.execute(query.order_by(Tenant.name.nulls_first(), ApiKey.created_at, ApiKey.id))
    return [(key, name) for key, name in rows.tuples()]


async def find_keys(session: AsyncSession, *, id_or_prefix: str) -> list[ApiKey]:
    """The keys an operator means by an id or a listed prefix."""
    try:
        return [found] if (found := await session.get(ApiKey, uuid.UUID(id_or_prefix))) else []
    except ValueError:
        return list(await session.scalars(select(ApiKey).where(ApiKey.prefix == id_or_prefix)))
