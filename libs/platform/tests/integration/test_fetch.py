"""The URL fetcher against a real HTTP server on loopback: limits, redirects, errors, and SSRF refusals."""

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from pixtools_platform.fetch import (
    BlockedUrl,
    ClientErrorStatus,
    ConnectionFailed,
    FetchLimits,
    FetchTimeout,
    FetchTooLarge,
    ServerErrorStatus,
    TooManyRedirects,
    fetch_url,
)
from pixtools_platform.netguard import AddressPolicy

from .http_fixtures import PNG, ImageServer, LoopbackOnlyTransport

LOCAL_STACK_POLICY = AddressPolicy.parse(["127.0.0.0/8"])
LIMITS = FetchLimits(max_bytes=256 * 1024, connect_timeout_s=1.0, total_timeout_s=0.5)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[ImageServer]:
    image_server = ImageServer()
    listener = await asyncio.start_server(image_server.handle, "127.0.0.1", 0)
    image_server.port = listener.sockets[0].getsockname()[1]
    yield image_server
    listener.close()
    await image_server.close()


@pytest_asyncio.fixture
async def guard() -> AsyncIterator[LoopbackOnlyTransport]:
    transport = LoopbackOnlyTransport()
    yield transport
    await transport.aclose()
    assert transport.refused == [], "the fetcher tried to reach a non-loopback address"


@pytest_asyncio.fixture
async def client(guard: LoopbackOnlyTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=guard, trust_env=False) as http:
        yield http


@pytest_asyncio.fixture
async def canary() -> AsyncIterator[tuple[int, list[int]]]:
    connections: list[int] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    listener = await asyncio.start_server(count, "127.0.0.1", 0)
    yield listener.sockets[0].getsockname()[1], connections
    listener.close()


def _url(server: ImageServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def test_good_image_is_returned_with_its_declared_type(server, client):
    fetched = await fetch_url(_url(server, "/image.png"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert (fetched.data, fetched.declared_type, fetched.url) == (PNG, "image/png", _url(server, "/image.png"))


async def test_html_is_returned_unsniffed_with_its_declared_type(server, client):
    fetched = await fetch_url(_url(server, "/page.html"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert fetched.declared_type == "text/html"
    assert fetched.data.startswith(b"<!doctype html>")


async def test_redirect_on_the_same_server_is_followed_and_reports_the_final_url(server, client):
    fetched = await fetch_url(_url(server, "/moved"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert (fetched.data, fetched.url) == (PNG, _url(server, "/image.png"))


async def test_three_redirects_are_followed_but_a_fourth_is_refused(server, client):
    fetched = await fetch_url(_url(server, "/chain/3"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert fetched.url == _url(server, "/chain/0")
    with pytest.raises(TooManyRedirects) as caught:
        await fetch_url(_url(server, "/chain/4"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert (caught.value.code, caught.value.retryable) == ("fetch.redirects", False)


@pytest.mark.parametrize("path", ["/to-metadata", "/to-private", "/to-ipv6-loopback"])
async def test_redirect_to_a_private_address_is_blocked_before_connecting(server, client, path):
    with pytest.raises(BlockedUrl) as caught:
        await fetch_url(_url(server, path), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert (caught.value.code, caught.value.retryable) == ("fetch.blocked", False)


async def test_name_is_resolved_once_and_the_connection_goes_to_the_checked_address(server, client, monkeypatch):
    loop = asyncio.get_running_loop()
    answers = iter(["127.0.0.1", "10.0.0.1"])  # a rebinding resolver: the second answer is private
    lookups: list[str] = []

    async def rebinding_getaddrinfo(host, port, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (next(answers), port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding_getaddrinfo)
    fetched = await fetch_url(f"http://images.example:{server.port}/image.png", LOCAL_STACK_POLICY, client=client)
    assert (fetched.data, lookups, server.host_headers) == (PNG, ["images.example"], [f"images.example:{server.port}"])


async def test_slow_response_times_out_as_retryable(server, client):
    started = time.monotonic()
    with pytest.raises(FetchTimeout) as caught:
        await fetch_url(_url(server, "/slow"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert caught.value.retryable
    assert time.monotonic() - started < 1.5


async def test_total_deadline_stops_a_body_that_trickles_in(server, client):
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        await fetch_url(_url(server, "/drip"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert time.monotonic() - started < 1.5


async def test_truncated_body_is_a_retryable_connection_failure(server, client):
    with pytest.raises(ConnectionFailed) as caught:
        await fetch_url(_url(server, "/truncated"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert (caught.value.code, caught.value.retryable) == ("fetch.connection", True)


async def test_huge_body_is_cut_off_while_streaming(server, client):
    with pytest.raises(FetchTooLarge) as caught:
        await fetch_url(_url(server, "/huge"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert (caught.value.code, caught.value.retryable) == ("fetch.too_large", False)
    await asyncio.sleep(0.1)
    assert server.huge_bytes_sent < 32 * 1024 * 1024, "the fetcher kept reading past the cap"


async def test_declared_length_over_the_cap_is_refused_before_reading(server, client):
    started = time.monotonic()
    with pytest.raises(FetchTooLarge):
        await fetch_url(_url(server, "/huge-declared"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert time.monotonic() - started < 0.4


async def test_missing_image_is_a_permanent_client_error(server, client):
    with pytest.raises(ClientErrorStatus) as caught:
        await fetch_url(_url(server, "/nothing-here"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert (caught.value.code, caught.value.retryable) == ("fetch.http_4xx", False)


async def test_service_unavailable_is_retryable_and_a_later_call_succeeds(server, client):
    with pytest.raises(ServerErrorStatus) as caught:
        await fetch_url(_url(server, "/flaky"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert (caught.value.code, caught.value.retryable) == ("fetch.http_5xx", True)
    fetched = await fetch_url(_url(server, "/flaky"), LOCAL_STACK_POLICY, LIMITS, client=client)
    assert fetched.data == PNG


async def test_environment_proxies_are_never_used(server, canary, monkeypatch):
    canary_port, connections = canary
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{canary_port}")
    fetched = await fetch_url(_url(server, "/image.png"), LOCAL_STACK_POLICY, LIMITS)
    assert (fetched.data, connections) == (PNG, [])


SSRF_URLS = [
    "http://127.0.0.1:{canary}/",
    "http://2130706433:{canary}/",
    "http://0x7f.1:{canary}/",
    "http://127.1:{canary}/",
    "http://localhost:{canary}/",
    "http://[::1]:{canary}/",
    "http://[::ffff:127.0.0.1]:{canary}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://10.0.0.1/",
    "http://[fd00:ec2::254]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "ftp://127.0.0.1:{canary}/",
    "file:///etc/passwd",
    "http://93.184.216.34:8080/",
    "https://user:secret@127.0.0.1:{canary}/",
]


@pytest.mark.parametrize("template", SSRF_URLS)
async def test_every_blocked_form_is_refused_without_a_connection(template, canary, client):
    canary_port, connections = canary
    with pytest.raises(BlockedUrl):
        await fetch_url(template.format(canary=canary_port), AddressPolicy(), LIMITS, client=client)
    await asyncio.sleep(0.01)
    assert connections == []
