"""End-to-end fixtures: a process stack, a tenant, a webhook receiver on loopback, and gateways started with the
settings a test gives them."""

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from pixtools_db import create_engine, session_factory
from pixtools_gateway.handlers.tenants import create_tenant

from .harness import BIN, Stack, stack_environment


@contextlib.contextmanager
def _core_stack(infra, database_url, namespace, tmp_path, **overrides: str) -> Iterator[Stack]:
    """Aggregator, ingest and gateway processes on this test's database, namespace and directory."""
    (tmp_path / "logs").mkdir()
    env = stack_environment(
        amqp_url=infra.amqp_url, database_url=database_url, namespace=namespace, blob_dir=tmp_path / "blobs"
    )
    running = Stack({**env, **overrides}, tmp_path / "logs")
    try:
        for name in ("aggregator", "ingest", "gateway"):
            running.start(name)
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def stack(infra, database_url, namespace, tmp_path) -> Iterator[Stack]:
    with _core_stack(infra, database_url, namespace, tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def module_stack(infra, database_url, tmp_path_factory) -> Iterator[Stack]:
    """One core stack shared by a module's tests (for tests that need no broker namespace of their own)."""
    from pixtools_testkit.fixtures import delete_namespace

    namespace = f"t{secrets.token_hex(4)}"
    try:
        with _core_stack(infra, database_url, namespace, tmp_path_factory.mktemp("stack")) as running:
            yield running
    finally:
        asyncio.run(delete_namespace(infra.amqp_url, namespace))


@pytest.fixture(scope="module")
def module_tenant_key(database_url) -> str:
    """A tenant of the module's own, shared by its tests."""
    return new_tenant_key(database_url)


@contextlib.contextmanager
def lone_gateway(infra, database_url, namespace, tmp_path, **overrides: str) -> Iterator[Stack]:
    """The gateway process alone, relay off, with `overrides` to its settings."""
    (tmp_path / "logs").mkdir()
    env = stack_environment(
        amqp_url=infra.amqp_url, database_url=database_url, namespace=namespace, blob_dir=tmp_path / "blobs"
    )
    running = Stack({**env, "PIXTOOLS_RELAY_ENABLED": "false", **overrides}, tmp_path / "logs")
    try:
        running.start("gateway")
        yield running
    finally:
        running.stop_all()
        asyncio.run(_drop_unpublished_events(database_url))


async def _drop_unpublished_events(database_url: str) -> None:
    """Delete the outbox rows a relay-off gateway left: no worker of its namespace will ever take them.

    The test database is shared by the whole session, and a later stack's relay would otherwise publish them into
    its own namespace (a schemathesis run leaves batches of up to 1000 URL jobs), and its tests would wait behind
    them. Tests run one at a time, so the only unpublished rows at this point are this gateway's.
    """
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM outbox WHERE published_at IS NULL"))
    finally:
        await engine.dispose()


@pytest.fixture
def gateway_only(infra, database_url, namespace, tmp_path) -> Iterator[Stack]:
    """The gateway process alone, relay off: jobs stay where the HTTP API puts them, for tests of the HTTP contract."""
    with lone_gateway(infra, database_url, namespace, tmp_path) as running:
        yield running


@pytest.fixture
def vision_stack(stack) -> Stack:
    """The stack with the detect and denoise stages too (they load their models from ../shared/models)."""
    for name in ("detect", "denoise"):
        stack.start(name)
    return stack


@pytest.fixture
def s3_stack(infra, database_url, namespace, tmp_path) -> Iterator[Stack]:
    """The same stack storing objects in a fresh bucket of the S3-compatible server."""
    from pixtools_platform.blobstore import S3BlobStore

    bucket = f"e2e-{secrets.token_hex(4)}"

    async def create_bucket() -> None:
        store = await S3BlobStore.open(bucket=bucket, endpoint_url=infra.s3_endpoint_url, region="us-east-1")
        await store.ensure_bucket()
        await store.close()

    asyncio.run(create_bucket())
    s3 = {
        "PIXTOOLS_BLOB_BACKEND": "s3",
        "PIXTOOLS_S3_BUCKET": bucket,
        "PIXTOOLS_S3_ENDPOINT_URL": infra.s3_endpoint_url,
    }
    with _core_stack(infra, database_url, namespace, tmp_path, **s3) as running:
        yield running


def new_tenant_key(database_url: str) -> str:
    """Create a tenant and return its API key."""

    async def make() -> str:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with session_factory(engine).begin() as session:
                _, key = await create_tenant(session, name=f"e2e-{secrets.token_hex(4)}")
            return key
        finally:
            await engine.dispose()

    return asyncio.run(make())


@pytest.fixture
def tenant_key(database_url) -> str:
    return new_tenant_key(database_url)


@dataclass
class Received:
    """Webhooks a receiver got: headers and raw body."""

    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            received.calls.append(({key.lower(): value for key, value in self.headers.items()}, body))
            received.event.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks", received
    finally:
        server.shutdown()


def pipeline_json(pipeline: list[object]) -> str:
    return json.dumps(pipeline)


def read_sse(client: httpx.Client, path: str) -> list[tuple[str, dict]]:
    """Every (event name, JSON data) of a server-sent event stream, read until the server ends it."""
    events: list[tuple[str, dict]] = []
    with client.stream("GET", path) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:") and name:
                events.append((name, json.loads(line.partition(":")[2])))
    return events


@dataclass
class ImageServer:
    """A loopback HTTP server of images for URL jobs: good, slow, missing, HTML, and 'flaky' paths a test can fix."""

    base_url: str
    hits: dict[str, int] = field(default_factory=dict)
    fixed: set[str] = field(default_factory=set)
    delay_s: float = 0.0

    def url(self, path: str) -> str:
        """The absolute URL of a path on this server."""
        return f"{self.base_url}{path}"


def _jpeg_for(name: str, size: tuple[int, int] = (320, 240)) -> bytes:
    import hashlib
    import io

    from PIL import Image

    seed = hashlib.sha256(name.encode()).digest()
    image = Image.new("RGB", size, (seed[0], seed[1], seed[2]))
    image.paste((seed[3], seed[4], seed[5]), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    """/img/<name>.jpg images (after `delay_s`), /missing/* 404, /page.html HTML, /flaky/<name>.jpg 404 until fixed."""
    import time

    state = ImageServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            state.hits[path] = state.hits.get(path, 0) + 1
            if path.startswith("/img/") or (path.startswith("/flaky/") and path in state.fixed):
                time.sleep(state.delay_s)
                self._send(200, "image/jpeg", _jpeg_for(path))
            elif path == "/page.html":
                self._send(200, "text/html", b"<!doctype html><html><body>not an image</body></html>")
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()


@pytest.fixture
def other_tenant_key(database_url) -> str:
    """A second tenant, for tests of one tenant's load on another."""
    return new_tenant_key(database_url)


@pytest.fixture
def gateways(infra, database_url, namespace, tmp_path) -> Iterator["Gateways"]:
    running = Gateways(
        stack_environment(
            amqp_url=infra.amqp_url, database_url=database_url, namespace=namespace, blob_dir=tmp_path / "blobs"
        ),
        tmp_path,
    )
    try:
        yield running
    finally:
        running.stop_all()


class Gateways:
    """Gateway processes (relay off: jobs stay accepted) started with the settings each test gives them."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env = {**env, "PIXTOOLS_RELAY_ENABLED": "false"}
        self.tmp_path = tmp_path
        self.stacks: list[Stack] = []

    def start(self, **settings: str) -> str:
        """Start one more gateway; returns its base URL."""
        log_dir = self.tmp_path / f"gateway-{len(self.stacks)}"
        log_dir.mkdir()
        stack = Stack({**self.env, **settings}, log_dir)
        stack.start("gateway")
        self.stacks.append(stack)
        return stack.gateway_url

    def stop_all(self) -> None:
        """Stop every gateway started."""
        for stack in self.stacks:
            stack.stop_all()


def admin(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `pixtools-admin` against the test database."""
    env = {**os.environ, "PIXTOOLS_DATABASE_URL": database_url}
    return subprocess.run([str(BIN / "pixtools-admin"), *arguments], env=env, capture_output=True, text=True)


def new_tenant(database_url: str) -> tuple[str, dict[str, str]]:
    """A new tenant's name and the headers of its key."""
    name = f"limits-{os.urandom(4).hex()}"
    created = admin(database_url, "create-tenant", name)
    assert created.returncode == 0, created.stderr
    return name, {"Authorization": f"Bearer {created.stdout.splitlines()[-1]}"}


def raw_connection(base: str) -> socket.socket:
    """A plain TCP connection to a gateway, for requests written byte by byte."""
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)
