"""Pure ASGI middleware: request timing with its latency histogram, and limits on request heads."""

from time import perf_counter

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixtools_gateway.errors import problem_response

REQUEST_SECONDS = Histogram(
    "pixtools_http_request_seconds",
    "HTTP request latency.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class RequestTimer:
    """Pure ASGI middleware recording request latency by route template (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_SECONDS.labels(scope["method"], route, status).observe(perf_counter() - started)


class HeadLimits:
    """Refuses a request whose head is too big before any route or database sees it.

    Too many headers, or too many header bytes, answer 431; a path and query over the limit answers 414. Both
    are problem+json. The HTTP server has already read the head by then; this bounds what the app does with it.
    """

    def __init__(self, app: ASGIApp, *, max_count: int, max_bytes: int, max_target_bytes: int) -> None:
        self.app = app
        self._max_count = max_count
        self._max_bytes = max_bytes
        self._max_target_bytes = max_target_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                # A response is an ASGI app of its own: the request never reaches the app's routes.
                await problem_response(*refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str, str, str] | None:
        """(status, problem slug, title, detail) of a head over a limit; None when it is within them."""
        headers = scope["headers"]
        if len(headers) > self._max_count:
            detail = f"{len(headers)} request headers; at most {self._max_count} are accepted"
            return 431, "request-header-fields-too-large", "Request header fields too large", detail
        size = sum(len(name) + len(value) for name, value in headers)
        if size > self._max_bytes:
            detail = f"{size} bytes of request headers; at most {self._max_bytes} are accepted"
            return 431, "request-header-fields-too-large", "Request header fields too large", detail
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if target > self._max_target_bytes:
            detail = f"a {target}-byte path and query; at most {self._max_target_bytes} are accepted"
            return 414, "uri-too-long", "URI too long", detail
        return None
