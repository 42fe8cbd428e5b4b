"""The operations endpoints every worker serves: /healthz, /readyz and /metrics."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[object]]

READY = Gauge("pixtools_ready", "1 when every readiness check passed at the last scrape or probe, else 0.")


def ops_app(checks: Mapping[str, Check]) -> Starlette:
    """A small app: liveness, readiness over the given checks, and Prometheus metrics."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ready, report = await _readiness(checks)
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": report}, 200 if ready else 503)

    async def metrics(_: Request) -> Response:
        # Readiness is evaluated on scrape too, so an unready worker shows in Prometheus without probes.
        await _readiness(checks)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)])


async def _readiness(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    """Run every check; record the verdict in `pixtools_ready` and return it with each check's result."""
    results = await asyncio.gather(*(_run_check(check) for check in checks.values()))
    ready = all(result == "ok" for result in results)
    READY.set(1 if ready else 0)
    return ready, dict(zip(checks, results, strict=True))


async def _run_check(check: Check) -> str:
    try:
        await asyncio.wait_for(check(), timeout=3)
    except Exception as error:
        return f"failed: {type(error).__name__}: {error}"
    return "ok"


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the worker that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OpsServer:
    """Serves the ops app in the worker's own event loop."""

    def __init__(self, host: str, port: int, checks: Mapping[str, Check]) -> None:
        config = uvicorn.Config(ops_app(checks), host=host, port=port, log_level="warning", access_log=False)
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving in the background."""
        self._task = asyncio.create_task(self._server.serve())
        # uvicorn exposes readiness only as a flag, so poll it briefly.
        while not self._server.started and not self._task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
