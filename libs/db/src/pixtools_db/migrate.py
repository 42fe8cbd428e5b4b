"""Create the database if needed and bring its schema to the latest migration."""

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it does not exist; True when it was created."""
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{target.database}"')
        return not exists
    finally:
        await connection.close()


def upgrade(url: str) -> None:
    """Create the database if missing, then apply every pending migration (blocking; not for a running loop)."""
    asyncio.run(ensure_database(url))
    command.upgrade(alembic_config(url), "head")
