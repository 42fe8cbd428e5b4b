"""Each tenant's limits (the defaults, or its overrides), and how many of its jobs are unfinished."""

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pixtools_contracts import JOB_UNFINISHED
from pixtools_db import Job, TenantLimits


@dataclass(frozen=True)
class Limits:
    """A tenant's limits in force."""

    submissions_per_s: int
    reads_per_s: int
    streams: int
    unfinished_jobs: int


@dataclass(frozen=True)
class Overrides:
    """What a tenant has of its own; None keeps the default."""

    submissions_per_s: int | None = None
    reads_per_s: int | None = None
    streams: int | None = None
    unfinished_jobs: int | None = None

    def applied_to(self, defaults: Limits) -> Limits:
        """The limits in force: these overrides over `defaults`."""
        return Limits(
            submissions_per_s=self.submissions_per_s or defaults.submissions_per_s,
            reads_per_s=self.reads_per_s or defaults.reads_per_s,
            streams=self.streams or defaults.streams,
            unfinished_jobs=self.unfinished_jobs or defaults.unfinished_jobs,
        )


async def read_overrides(connection: AsyncConnection | AsyncSession, *, tenant_id: uuid.UUID) -> Overrides:
    """The tenant's overrides; none when it has no row."""
    columns = (
        TenantLimits.submissions_per_s,
        TenantLimits.reads_per_s,
        TenantLimits.streams,
        TenantLimits.unfinished_jobs,
    )
    row = (await connection.execute(select(*columns).where(TenantLimits.tenant_id == tenant_id))).first()
    return Overrides() if row is None else Overrides(*row)


async def write_overrides(session: AsyncSession, *, tenant_id: uuid.UUID, changes: dict[str, int | None]) -> None:
    """Set some of a tenant's overrides (None clears one back to the default), keeping the others."""
    statement = insert(TenantLimits).values(tenant_id=tenant_id, **changes)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[TenantLimits.tenant_id], set_={**changes, "updated_at": func.now()}
        )
    )


async def count_unfinished(connection: AsyncConnection, *, tenant_id: uuid.UUID, up_to: int) -> int:
    """The tenant's unfinished jobs, counted no further than `up_to`: the index scan stops there."""
    unfinished = (
        select(Job.id)
        .where(Job.tenant_id == tenant_id, Job.state.in_([state.value for state in JOB_UNFINISHED]))
        .limit(up_to)
        .subquery()
    )
    return int(await connection.scalar(select(func.count()).select_from(unfinished)) or 0)
