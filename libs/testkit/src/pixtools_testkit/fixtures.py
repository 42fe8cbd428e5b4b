"""Pytest fixtures: a migrated database per session, a broker namespace per test, blob stores."""

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from pixtools_db.migrate import alembic_config
from pixtools_platform.blobstore import LocalBlobStore, S3BlobStore
from pixtools_platform.broker import RetryPolicy
from pixtools_testkit.infra import Infra, real_infra

SERVICES = ("ingest", "denoise", "detect", "aggregator")
STAGES = ("ingest", "denoise", "detect")
TEST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.2, factor=2.0, jitter=0.5)
"""The retry policy tests use, so growing delays show in seconds, not minutes."""


@pytest.fixture(scope="session", autouse=True)
def tracing() -> None:
    """A real tracer provider, so trace context is created and propagated as in production."""
    from pixtools_platform.telemetry import configure_tracing

    configure_tracing("tests", None)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """Real RabbitMQ, Postgres and S3-compatible server for the whole session."""
    with real_infra() as found:
        yield found


@dataclass(frozen=True)
class ScratchDatabase:
    """A database of its own on the test server: `url` for SQLAlchemy and Alembic, `dsn` for plain asyncpg."""

    url: str
    dsn: str


@contextmanager
def scratch_database(postgres_url: str, prefix: str) -> Iterator[ScratchDatabase]:
    """Create an empty database named `prefix_<random>` on the server of `postgres_url`; drop it afterwards."""
    server = make_url(postgres_url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = server.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)

    async def run(sql: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield ScratchDatabase(
            url=server.set(database=name).render_as_string(hide_password=False),
            dsn=server.set(drivername="postgresql", database=name).render_as_string(hide_password=False),
        )
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(infra: Infra) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped afterwards."""
    from alembic import command

    with scratch_database(infra.postgres_url, "pixtools_test") as database:
        command.upgrade(alembic_config(database.url), "head")
        yield database.url


@pytest_asyncio.fixture
async def namespace(infra: Infra) -> AsyncIterator[str]:
    """A broker namespace of this test's own; its queues and exchanges are deleted afterwards."""
    name = f"t{secrets.token_hex(4)}"
    yield name
    await delete_namespace(infra.amqp_url, name)


async def delete_namespace(amqp_url: str, name: str) -> None:
    """Delete every queue and exchange of a broker namespace."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        # Stages also consume a bulk lane, `<service>.bulk`, with its own dead-letter and delay queues.
        for service in (*SERVICES, *(f"{stage}.bulk" for stage in STAGES)):
            tiers = {*TEST_RETRY.tiers_ms(), *RetryPolicy().tiers_ms()}
            delay_queues = [f"{name}.{service}.delay.{tier}ms" for tier in tiers]
            for queue in (f"{name}.{service}", f"{name}.{service}.dlq", *delay_queues):
                await channel.queue_delete(queue)
        await channel.queue_delete(f"{name}.journal")
        await channel.queue_delete(f"{name}.cancellations")
        for exchange in ("events", "dlx", "redeliver"):
            await channel.exchange_delete(f"{name}.{exchange}")
    finally:
        await connection.close()


@pytest_asyncio.fixture
async def s3_store(infra: Infra) -> AsyncIterator[S3BlobStore]:
    """An S3 blob store on a fresh bucket of the S3-compatible server."""
    store = await S3BlobStore.open(
        bucket=f"t{secrets.token_hex(4)}", endpoint_url=infra.s3_endpoint_url, region="us-east-1"
    )
    await store.ensure_bucket()
    yield store
    await store.close()


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    """A local-directory blob store in a temporary directory."""
    return LocalBlobStore(tmp_path / "blobs")
