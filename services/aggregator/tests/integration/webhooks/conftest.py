"""Webhook receivers: tiny HTTP servers on 127.0.0.1 that answer scripted statuses and record what they got."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest_asyncio


@dataclass
class Received:
    """One request a receiver got."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A tiny HTTP server on 127.0.0.1 answering a scripted list of statuses (the last one repeats)."""

    def __init__(self, statuses: list[int], location: str | None = None) -> None:
        self.statuses = list(statuses)
        self.location = location
        self.requests: list[Received] = []
        self.path = f"/hooks/{secrets.token_hex(6)}"
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{self.path}"

    async def start(self) -> "Receiver":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Received(time.monotonic(), request_line.split(" ")[1], headers, body))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        location = f"Location: {self.location}\r\n" if self.location else ""
        writer.write(f"HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n{location}\r\n".encode())
        await writer.drain()
        writer.close()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """Start webhook receivers; they stop after the test."""
    running: list[Receiver] = []

    async def start(statuses: list[int], location: str | None = None) -> Receiver:
        server = await Receiver(statuses, location).start()
        running.append(server)
        return server

    yield start
    for server in running:
        await server.stop()
