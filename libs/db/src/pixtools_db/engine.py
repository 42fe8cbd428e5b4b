"""Async engine and session factory."""

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(url: str, *, pool_size: int = 10, server_settings: Mapping[str, str] | None = None) -> AsyncEngine:
    """An asyncpg engine; connections broken by a database restart are invalidated and replaced on error.

    No pre-ping: it costs a round trip on every checkout, which the read API cannot afford. Errors never
    show statement parameters: they can hold secrets (webhook signing secrets, key hashes). `server_settings`
    are Postgres settings every connection of the engine starts with.
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        hide_parameters=True,
        connect_args={"server_settings": dict(server_settings or {})},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
