"""A Postgres outage: every endpoint answers 503 with Retry-After, readiness fails, and service resumes by itself.

The test runs a Postgres server of its own (Debian's binaries, as the postgres user), so stopping it stops
nothing else.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from alembic import command

from pixtools_db import create_engine, session_factory
from pixtools_db.migrate import alembic_config
from pixtools_gateway.app import create_app
from pixtools_gateway.handlers.tenants import create_tenant
from pixtools_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


@dataclass
class OwnPostgres:
    """A Postgres server in a temporary folder, on a port of its own."""

    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/pixtools"

    def _ctl(self, *arguments: str) -> None:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *arguments)

    def start(self) -> None:
        self._ctl(
            "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "-l", str(self.data / "log"), "start"
        )

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


def _as_postgres(*command_line: str, check: bool = True) -> None:
    # initdb and postgres refuse to run as root.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command_line], check=check, capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Gateway = tuple[httpx.AsyncClient, str]
"""A client of the gateway app, and a tenant's API key."""


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if BIN is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.fail("this test needs Debian's postgresql binaries (/usr/lib/postgresql/*/bin) and runuser")
    # Not under pytest's tmp_path: its folders are private to root, and the server runs as postgres.
    data = Path(tempfile.mkdtemp(prefix="pixtools-own-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    _as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    server = OwnPostgres(data, _free_port())
    server.start()
    try:
        yield server
    finally:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(data, ignore_errors=True)


@pytest_asyncio.fixture
async def gateway(
    own_postgres: OwnPostgres, infra, namespace, tmp_path
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{own_postgres.port}/postgres")
    try:
        await admin.execute("CREATE DATABASE pixtools")
    finally:
        await admin.close()
    await asyncio.to_thread(command.upgrade, alembic_config(own_postgres.url), "head")
    engine = create_engine(own_postgres.url, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            _, key = await create_tenant(session, name="outage")
    finally:
        await engine.dispose()
    settings = GatewaySettings(
        env="test",
        database_url=own_postgres.url,
        amqp_url=infra.amqp_url,
        namespace=namespace,
        blob_dir=tmp_path / "blobs",
        relay_enabled=False,
        auth_cache_s=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30) as client:
            yield client, key


async def test_a_database_outage_is_503_with_retry_after_and_service_resumes(gateway, own_postgres):
    client, key = gateway
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/jobs", headers=headers)).status_code == 200

    await asyncio.to_thread(own_postgres.stop)
    for path in ("/v1/jobs", f"/v1/jobs/{'0' * 8}-0000-0000-0000-{'0' * 12}", "/v1/webhooks/secret"):
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 503, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["type"].endswith("/service-unavailable")
    submitted = await client.post(
        "/v1/jobs", json={"source_url": "https://i.example/a.jpg", "pipeline": [{"op": "metadata"}]}, headers=headers
    )
    assert submitted.status_code == 503, submitted.text
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("failed")

    await asyncio.to_thread(own_postgres.start)
    statuses = []
    for _ in range(40):
        statuses.append((await client.get("/v1/jobs", headers=headers)).status_code)
        if statuses[-1] == 200:
            break
        await asyncio.sleep(0.25)
    assert statuses[-1] == 200, statuses
    assert set(statuses) <= {200, 503}, statuses
    assert (await client.get("/readyz")).status_code == 200
