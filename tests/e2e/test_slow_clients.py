"""Slow clients through a real gateway process: a trickled body gets 408 and a trickled head is cut off."""

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from .conftest import new_tenant, raw_connection

pytestmark = pytest.mark.e2e


def _trickle_until_answered(connection: socket.socket, chunks: Iterator[bytes], limit_s: float) -> tuple[bytes, float]:
    """Send a byte every 0.2 s until the server answers or closes; what it sent and when, from the start."""
    started = time.monotonic()
    connection.settimeout(0.2)
    received = b""
    while time.monotonic() - started < limit_s:
        with contextlib.suppress(TimeoutError):
            data = connection.recv(65536)
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received:
                break
        with contextlib.suppress(OSError):
            connection.sendall(next(chunks))
    return received, time.monotonic() - started


@pytest.mark.parametrize("implementation", ["httptools", "h11"])
def test_a_client_trickling_its_body_gets_408_and_a_trickled_head_is_cut_off(gateways, database_url, implementation):
    base = gateways.start(
        PIXTOOLS_REQUEST_BODY_TIMEOUT_S="1",
        PIXTOOLS_REQUEST_HEAD_TIMEOUT_S="1",
        PIXTOOLS_HTTP_IMPLEMENTATION=implementation,
    )
    _, tenant = new_tenant(database_url)

    body_connection = raw_connection(base)
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Authorization: {tenant['Authorization']}\r\nContent-Length: 1000\r\n\r\n{{"
    )
    body_connection.sendall(head.encode())
    answer, body_seconds = _trickle_until_answered(body_connection, iter(lambda: b" ", None), limit_s=10)
    body_connection.close()

    head_connection = raw_connection(base)
    trickled_head = iter(bytes([byte]) for byte in b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: " + b"y" * 100)
    head_answer, head_seconds = _trickle_until_answered(head_connection, trickled_head, limit_s=10)
    head_connection.close()

    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in answer.lower()
    assert body_seconds < 3
    assert head_answer == b""
    assert head_seconds < 3
    assert f'"http_implementation": "{implementation}"' in gateways.stacks[0].log("gateway")
