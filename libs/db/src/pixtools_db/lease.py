"""Named leases in Postgres, so one replica at a time runs a periodic task without a scheduler.

Expiry is measured on the database's clock (`now()`), so replicas with skewed clocks agree on who holds a lease.
"""

from datetime import timedelta

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_db.schema import Lease


async def acquire_lease(sessions: async_sessionmaker[AsyncSession], *, name: str, holder: str, ttl: timedelta) -> bool:
    """Take the lease for `ttl` when it is free, expired or already ours; False while another holder has it."""
    insert_row = insert(Lease).values(name=name, holder=holder, expires_at=func.now() + ttl)
    take_over = insert_row.on_conflict_do_update(
        index_elements=[Lease.name],
        set_={"holder": insert_row.excluded.holder, "expires_at": insert_row.excluded.expires_at},
        # The row lock taken by the conflict makes this check and the takeover one atomic step.
        where=(Lease.expires_at < func.now()) | (Lease.holder == holder),
    )
    async with sessions.begin() as session:
        return await session.scalar(take_over.returning(Lease.name)) is not None


async def renew_lease(sessions: async_sessionmaker[AsyncSession], *, name: str, holder: str, ttl: timedelta) -> bool:
    """Extend our lease by `ttl` from now; False when another holder has taken it over."""
    statement = (
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=func.now() + ttl)
        .returning(Lease.name)
    )
    async with sessions.begin() as session:
        return await session.scalar(statement) is not None


async def release_lease(sessions: async_sessionmaker[AsyncSession], *, name: str, holder: str) -> bool:
    """Give the lease up at once, so the next replica need not wait for it to expire; False when it was not ours."""
    statement = delete(Lease).where(Lease.name == name, Lease.holder == holder).returning(Lease.name)
    async with sessions.begin() as session:
        return await session.scalar(statement) is not None


class PostgresLease:
    """One named lease as one holder sees it: acquire, renew and release without repeating the arguments."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, name: str, holder: str, ttl: timedelta) -> None:
        self._sessions = sessions
        self.name = name
        self.holder = holder
        self.ttl = ttl

    async def acquire(self) -> bool:
        """Take the lease; False while another holder has it."""
        return await acquire_lease(self._sessions, name=self.name, holder=self.holder, ttl=self.ttl)

    async def renew(self) -> bool:
        """Extend the lease; False when it was lost."""
        return await renew_lease(self._sessions, name=self.name, holder=self.holder, ttl=self.ttl)

    async def release(self) -> None:
        """Give the lease up."""
        await release_lease(self._sessions, name=self.name, holder=self.holder)
