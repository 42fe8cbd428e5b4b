"""Cutting off clients that send a request too slowly, so a trickle cannot hold a connection and a task forever.

Three timeouts cover a connection's life:

- *Idle between requests*: uvicorn's `timeout_keep_alive` closes a kept-alive connection that sends nothing.
- *Head*: uvicorn has none. Its keep-alive timer stops at a request's first byte and is not running at all on
  a new connection, and h11's `h11_max_incomplete_event_size` bounds a head's size, not its time. So the
  gateway serves with `head_timeout_protocol`, httptools' protocol with a timer from the connection (or a
  request's first byte) to the end of the head; a head not complete by then has its connection closed.
- *Body*: `BodyDeadline` bounds the time from the head to the body's last byte. A body still arriving at the
  deadline answers 408 with `Connection: close`.
"""

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
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


def head_timeout_protocol(timeout_s: float) -> type[HttpToolsProtocol]:
    """httptools' HTTP protocol for uvicorn's `http=`, closing a connection whose head takes over `timeout_s`."""

    class HeadTimeoutProtocol(HttpToolsProtocol):
        """A connection has `timeout_s` from its start, or from a request's first byte, to the end of the head."""

        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._start_head_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._start_head_timer()

        def on_headers_complete(self) -> None:
            self._stop_head_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _start_head_timer(self) -> None:
            self._stop_head_timer()
            self._head_timer = self.loop.call_later(timeout_s, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeadTimeoutProtocol
