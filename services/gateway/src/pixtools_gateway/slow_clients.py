"""Cutting off clients that send a request too slowly, so a trickle cannot hold a connection and a task forever.

Three timeouts cover a connection's life:

- *Idle between requests*: uvicorn's `timeout_keep_alive` closes a kept-alive connection that sends nothing.
- *Head*: uvicorn has none. Its keep-alive timer stops at a request's first byte and is not running at all on
  a new connection, and h11's `h11_max_incomplete_event_size` bounds a head's size, not its time. So the
  gateway serves with `head_timeout_protocol`, uvicorn's httptools or h11 protocol with a timer from the
  connection (or a request's first byte) to the end of the head; a head not complete by then has its
  connection closed.
- *Body*: `BodyDeadline` bounds the time from the head to the body's last byte. A body still arriving at the
  deadline answers 408 with `Connection: close`.
"""

import asyncio
from typing import Any

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pixtools_gateway.errors import RequestTimeout


class BodyDeadline:
    """Pure ASGI middleware: the app's reads of the request body fail with 408 past `timeout_s`."""

    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        self.app = app
        self._timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:
                # After the body, a receive waits for the disconnect (a stream's listener does): no deadline.
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self._timeout_s:g} s", headers={"Connection": "close"}
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)


def head_timeout_protocol(timeout_s: float, implementation: str = "httptools") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol for `http=` (httptools or h11), closing a connection whose head outlasts `timeout_s`."""
    if implementation == "h11":
        return _h11_head_timeout_protocol(timeout_s)
    return _httptools_head_timeout_protocol(timeout_s)


class _HeadTimer:
    """A timer from a connection's start, or a request's first byte, to the end of the request's head."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        """Whether a head is being timed."""
        return self._handle is not None

    def start(self, transport: asyncio.BaseTransport) -> None:
        """(Re)start timing a head; the transport closes when it runs out."""
        self.stop()
        self._handle = self._loop.call_later(self._timeout_s, self._timed_out, transport)

    def stop(self) -> None:
        """The head arrived, or the connection ended."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _timed_out(self, transport: asyncio.BaseTransport) -> None:
        self._handle = None
        if not transport.is_closing():
            transport.close()


def _httptools_head_timeout_protocol(timeout_s: float) -> type[HttpToolsProtocol]:
    class HeadTimeoutProtocol(HttpToolsProtocol):
        """A connection has `timeout_s` from its start, or from a request's first byte, to the end of the head."""

        _head_timer: _HeadTimer

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._head_timer = _HeadTimer(self.loop, timeout_s)
            self._head_timer.start(transport)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_timer.start(self.transport)

        def on_headers_complete(self) -> None:
            self._head_timer.stop()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_timer.stop()
            super().connection_lost(exc)

    return HeadTimeoutProtocol


def _h11_head_timeout_protocol(timeout_s: float) -> type[H11Protocol]:
    class HeadTimeoutProtocol(H11Protocol):
        """The same timeout for h11, which has no parser callbacks: the head is done once h11 leaves IDLE."""

        _head_timer: _HeadTimer

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._head_timer = _HeadTimer(self.loop, timeout_s)
            self._head_timer.start(transport)

        def data_received(self, data: bytes) -> None:
            if not self._head_timer.running and self.conn.their_state is h11.IDLE:
                self._head_timer.start(self.transport)  # a request's first byte on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._head_timer.stop()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_timer.stop()
            super().connection_lost(exc)

    return HeadTimeoutProtocol
