"""Gateway test fixtures: the app over real Postgres, RabbitMQ and storage, and tenants with keys."""

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from pixtools_db import create_engine, session_factory
from pixtools_gateway.app import create_app
from pixtools_gateway.handlers.tenants import create_tenant
from pixtools_gateway.settings import GatewaySettings

EXAMPLE_PIPELINE = json.dumps(
    [
        {"op": "resize", "params": {"width": 256}},
        {
            "parallel": [
                [{"op": "convert", "params": {"format": "webp", "quality": 80}}],
                [{"op": "convert", "params": {"format": "avif"}}],
                [{"op": "metadata"}],
            ]
        },
    ]
)


def jpeg(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A small JPEG made in memory."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG")
    return buffer.getvalue()


@dataclass
class Api:
    """An HTTP client on the app plus what the tests need to look behind it."""

    client: httpx.AsyncClient
    settings: GatewaySettings
    blob_dir: Path

    def as_tenant(self, key: str) -> dict[str, str]:
        """Headers authenticating as the tenant owning `key`."""
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def gateway_settings(infra, database_url, namespace, tmp_path) -> GatewaySettings:
    return GatewaySettings(
        env="test",
        database_url=database_url,
        amqp_url=infra.amqp_url,
        namespace=namespace,
        blob_dir=tmp_path / "blobs",
        relay_enabled=False,
        max_upload_bytes=200_000,
        max_pixels=4_000_000,
        webhook_allow_cidrs=["127.0.0.0/8"],
        auth_cache_s=0,
    )


@pytest_asyncio.fixture
async def api(gateway_settings) -> AsyncIterator[Api]:
    app = create_app(gateway_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield Api(client, gateway_settings, gateway_settings.blob_dir)


async def _new_tenant(database_url: str, name: str) -> str:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            _, key = await create_tenant(session, name=name)
        return key
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def tenant_key(database_url) -> str:
    import secrets

    return await _new_tenant(database_url, f"tenant-{secrets.token_hex(4)}")


@pytest_asyncio.fixture
async def other_tenant_key(database_url) -> str:
    import secrets

    return await _new_tenant(database_url, f"other-{secrets.token_hex(4)}")


@pytest_asyncio.fixture
async def db(database_url):
    """A session factory on the test database, for looking behind the API."""
    engine = create_engine(database_url, pool_size=2)
    yield session_factory(engine)
    await engine.dispose()
