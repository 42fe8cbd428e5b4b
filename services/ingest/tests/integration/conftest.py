"""A source server on loopback whose paths misbehave the ways a fetched URL can, counting every request it gets."""

import asyncio
import contextlib
import io
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio
from PIL import Image


def png(width: int = 32, height: int = 24) -> bytes:
    """A small real PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = png()

Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


class SourceServer:
    """A raw HTTP/1.1 server on 127.0.0.1: one request per connection, answered according to its path."""

    def __init__(self, redirect_target: str) -> None:
        self.port = 0
        self.requests: Counter[str] = Counter()
        self.failures_before_recovery = 1
        self._redirect_target = redirect_target
        self._closing = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()

    def url(self, path: str) -> str:
        """The URL of a path on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def close(self) -> None:
        """Wake every stalled handler and wait until each has closed its connection."""
        self._closing.set()
        await asyncio.gather(*self._handlers)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the request line and headers, count the path, answer, close."""
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            path = (await reader.readline()).split()[1].decode()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            self.requests[path] += 1
            await self._route(path)(writer)
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    def _route(self, path: str) -> Reply:
        routes: dict[str, Reply] = {
            "/image.png": self._image,
            "/mislabelled.jpg": lambda writer: self._send(writer, "200 OK", {"Content-Type": "image/jpeg"}, PNG),
            "/moved": self._redirect("/image.png"),
            "/to-private": self._redirect(self._redirect_target),
            "/page.html": lambda writer: self._send(
                writer, "200 OK", {"Content-Type": "text/html"}, b"<!doctype html>"
            ),
            "/recovering": self._recovering,
            "/down": self._unavailable,
            "/truncated": self._truncated,
            "/huge": self._huge,
            "/slow": self._slow,
        }
        return routes.get(path, lambda writer: self._send(writer, "404 Not Found", {}))

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: str, headers: dict[str, str], body: bytes = b"") -> None:
        headers = {"Connection": "close", "Content-Length": str(len(body)), **headers}
        lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _image(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "200 OK", {"Content-Type": "image/png"}, PNG)

    def _redirect(self, location: str) -> Reply:
        return lambda writer: self._send(writer, "302 Found", {"Location": location})

    async def _unavailable(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "503 Service Unavailable", {"Retry-After": "0"})

    async def _recovering(self, writer: asyncio.StreamWriter) -> None:
        if self.requests["/recovering"] <= self.failures_before_recovery:
            await self._unavailable(writer)
        else:
            await self._image(writer)

    async def _truncated(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "200 OK", {"Content-Type": "image/png", "Content-Length": "10000"}, PNG)

    async def _huge(self, writer: asyncio.StreamWriter) -> None:
        # No length: the cap can only be enforced while the body streams in.
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: image/png\r\n\r\n" + PNG)
        block = b"\0" * 65536
        for _ in range(64):
            writer.write(block)
            await writer.drain()

    async def _slow(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), 5)
        await self._image(writer)


@pytest_asyncio.fixture
async def canary() -> AsyncIterator[tuple[str, list[int]]]:
    """A listener on 127.0.0.2 (loopback, but not allowlisted) that counts the connections it receives."""
    connections: list[int] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    listener = await asyncio.start_server(count, "127.0.0.2", 0)
    port = listener.sockets[0].getsockname()[1]
    yield f"http://127.0.0.2:{port}/image.png", connections
    listener.close()
    await listener.wait_closed()


@pytest_asyncio.fixture
async def source_server(canary: tuple[str, list[int]]) -> AsyncIterator[SourceServer]:
    """The source server, listening on 127.0.0.1; its /to-private path redirects to the canary."""
    server = SourceServer(redirect_target=canary[0])
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    yield server
    listener.close()
    await server.close()
