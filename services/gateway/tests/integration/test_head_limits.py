"""Oversized request heads are refused as problem+json through the real HTTP server, before any route runs."""

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import uvicorn

from pixtools_gateway.app import create_app

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_asyncio.fixture
async def served(gateway_settings) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(gateway_settings), host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the gateway did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def _get(base: str, path: str = "/healthz", headers: list[tuple[str, str]] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        return await client.get(path, headers=headers)


async def test_an_ordinary_request_passes(served):
    assert (await _get(served, headers=[(f"X-Trace-{index}", "a" * 1000) for index in range(10)])).status_code == 200


async def test_two_thousand_headers_are_refused_with_431(served):
    answer = await _get(served, headers=[(f"X-Filler-{index}", "x") for index in range(2000)])
    assert answer.status_code == 431
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/request-header-fields-too-large")
    assert (
        "2000" in answer.json()["detail"] or "2003" in answer.json()["detail"] or "headers;" in answer.json()["detail"]
    )


async def test_a_one_megabyte_header_value_is_refused_with_431(served):
    answer = await _get(served, headers=[("X-Huge", "x" * 1_000_000)])
    assert answer.status_code == 431
    assert "bytes of request headers; at most 16384" in answer.json()["detail"]


async def test_an_overlong_path_and_query_is_refused_with_414(served):
    answer = await _get(served, f"/v1/jobs?cursor={'c' * 10_000}")
    assert answer.status_code == 414
    assert answer.json()["type"].endswith("/uri-too-long")
