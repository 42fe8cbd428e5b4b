"""Find the RabbitMQ, Postgres and S3-compatible server tests use, or start them.

Order: services named by environment; then the usual localhost ports; only then, when Docker is
available, testcontainers. Without any of these the tests fail with a message saying what to start.
"""

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Infra:
    """Connection URLs of the real services the tests use."""

    amqp_url: str
    postgres_url: str
    s3_endpoint_url: str


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _docker_available() -> bool:
    return shutil.which("docker") is not None and os.path.exists("/var/run/docker.sock")


@contextlib.contextmanager
def _amqp() -> Iterator[str]:
    if url := os.environ.get("PIXTOOLS_TEST_AMQP_URL"):
        yield url
    elif _listening("127.0.0.1", 5672):
        yield "amqp://guest:guest@127.0.0.1:5672/"
    elif _docker_available():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            params = container.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/"
    else:
        raise RuntimeError(
            "no RabbitMQ: set PIXTOOLS_TEST_AMQP_URL, start one on localhost:5672 "
            "(rabbitmq-server -detached), or install Docker for testcontainers"
        )


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    if url := os.environ.get("PIXTOOLS_TEST_DATABASE_URL"):
        yield url
    elif _listening("127.0.0.1", 5432):
        yield f"postgresql+asyncpg://{os.environ.get('PGUSER', 'postgres')}@127.0.0.1:5432/postgres"
    elif _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="asyncpg") as container:
            yield container.get_connection_url()
    else:
        raise RuntimeError(
            "no Postgres: set PIXTOOLS_TEST_DATABASE_URL, start one on localhost:5432, "
            "or install Docker for testcontainers"
        )


@contextlib.contextmanager
def _s3() -> Iterator[str]:
    if url := os.environ.get("PIXTOOLS_TEST_S3_ENDPOINT_URL"):
        yield url
        return
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def real_infra() -> Iterator[Infra]:
    """Yield URLs of a real broker, database server and S3-compatible server."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with _amqp() as amqp_url, _postgres() as postgres_url, _s3() as s3_url:
        yield Infra(amqp_url, postgres_url, s3_url)
