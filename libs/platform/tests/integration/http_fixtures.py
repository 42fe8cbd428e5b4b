"""A misbehaving HTTP server on loopback and a transport that refuses everything else, for the fetcher's tests."""

import asyncio
import contextlib
import ipaddress
import struct
import zlib
from collections.abc import Awaitable, Callable

import httpx


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PNG = _png()


class ImageServer:
    """A raw HTTP/1.1 server on 127.0.0.1 whose paths misbehave in every way the fetcher must survive."""

    def __init__(self) -> None:
        self.port = 0
        self.host_headers: list[str] = []
        self.huge_bytes_sent = 0
        self._flaky_calls = 0
        self._closing = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Wake every stalled handler and wait until each has closed its connection."""
        self._closing.set()
        await asyncio.gather(*self._handlers)

    async def _stall(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one request according to its path, then close the connection."""
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            path = (await reader.readline()).split()[1].decode()
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "host":
                    self.host_headers.append(value.strip())
            await self._route(path)(writer)
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    def _route(self, path: str) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
        if path.startswith("/chain/"):
            left = int(path.removeprefix("/chain/"))
            return self._redirect(f"/chain/{left - 1}") if left else self._image
        redirects = {
            "/moved": "/image.png",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-private": "http://10.0.0.1/image.png",
            "/to-ipv6-loopback": f"http://[::1]:{self.port}/image.png",
        }
        if path in redirects:
            return self._redirect(redirects[path])
        routes = {
            "/image.png": self._image,
            "/page.html": self._html,
            "/slow": self._slow,
            "/drip": self._drip,
            "/truncated": self._truncated,
            "/huge": self._huge,
            "/huge-declared": self._huge_declared,
            "/flaky": self._flaky,
        }
        return routes.get(path, self._not_found)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: str, headers: dict[str, str], body: bytes = b"") -> None:
        lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{name}: {value}" for name, value in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _image(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "200 OK", {"Content-Type": "image/png", "Content-Length": str(len(PNG))}, PNG)

    async def _html(self, writer: asyncio.StreamWriter) -> None:
        body = b"<!doctype html><title>not an image</title>"
        await self._send(writer, "200 OK", {"Content-Type": "text/html", "Content-Length": str(len(body))}, body)

    def _redirect(self, location: str) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
        return lambda writer: self._send(writer, "302 Found", {"Location": location, "Content-Length": "0"})

    async def _not_found(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "404 Not Found", {"Content-Length": "0"})

    async def _slow(self, writer: asyncio.StreamWriter) -> None:
        await self._stall(3)
        await self._image(writer)

    async def _drip(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "200 OK", {"Content-Type": "image/png", "Content-Length": "100"})
        for _ in range(100):  # each byte arrives well within any per-read timeout; only a deadline stops this
            await self._stall(0.05)
            writer.write(b"x")
            await writer.drain()

    async def _truncated(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "200 OK", {"Content-Type": "image/png", "Content-Length": "100000"}, PNG)

    async def _huge(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "200 OK", {"Content-Type": "image/png"})  # no length: the body ends at close
        block = b"\0" * 65536
        for _ in range(1024):  # 64 MiB unless the reader gives up
            writer.write(block)
            await writer.drain()
            self.huge_bytes_sent += len(block)

    async def _huge_declared(self, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, "200 OK", {"Content-Type": "image/png", "Content-Length": str(10**10)}, PNG)
        await self._stall(3)

    async def _flaky(self, writer: asyncio.StreamWriter) -> None:
        self._flaky_calls += 1
        if self._flaky_calls == 1:
            await self._send(writer, "503 Service Unavailable", {"Retry-After": "0", "Content-Length": "0"})
        else:
            await self._image(writer)


class LoopbackOnlyTransport(httpx.AsyncBaseTransport):
    """Lets requests through only to loopback address literals, and records every other attempt without sending."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            loopback = ipaddress.ip_address(request.url.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self.refused.append(str(request.url))
            raise httpx.ConnectError("the test transport refuses every destination but loopback literals")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
