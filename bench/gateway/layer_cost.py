"""CPU per request of the gateway with one of its layers left out at a time, in one process.

Each variant is a fresh app (`create_app`, the real Postgres; in-process limits unless the variant says Redis)
driven through httpx's ASGI transport, so HTTP parsing and the server's head timer are not in the figures. The
variants run in turn, three rounds, so that drifts of a shared machine fall on every variant alike:
  - `default`, and `redis` (limits counted in Redis);
  - `no-outer`: without the fair-share and early-refusal layers;
  - `no-<layer>`: without RateLimitHeaders, BodyDeadline, RequestTimer or HeadLimits.

    .venv/bin/python bench/gateway/layer_cost.py [--requests 400]
"""

import argparse
import asyncio
import sys
from pathlib import Path

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent))

import request_cost as cost

from pixtools_gateway.app import create_app
from pixtools_gateway.settings import GatewaySettings

LEFT_OUT = {
    "no-ratelimit-headers": "RateLimitHeaders",
    "no-body-deadline": "BodyDeadline",
    "no-timer": "RequestTimer",
    "no-headlimits": "HeadLimits",
}
VARIANTS = ["default", "redis", "no-outer", *LEFT_OUT]


def app_variant(name: str) -> FastAPI:
    """The gateway app with the variant's layer left out."""
    settings = GatewaySettings(
        database_url=cost.DATABASE_URL,
        namespace="bench-cost",
        relay_enabled=False,
        reads_per_s=1_000_000,
        submissions_per_s=1_000_000,
        log_level="WARNING",
        redis_url="redis://localhost:6379/0" if name == "redis" else None,
    )
    app = create_app(settings)
    if name in LEFT_OUT:
        app.user_middleware = [layer for layer in app.user_middleware if layer.cls.__name__ != LEFT_OUT[name]]
    if name == "no-outer":
        app.build_middleware_stack = lambda: FastAPI.build_middleware_stack(app)  # type: ignore[method-assign]
    return app


async def measure(name: str, key: str, count: int) -> tuple[float, float]:
    """CPU ms per read and per admitted submission of one variant."""
    app = app_variant(name)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            headers = {"X-API-Key": key}
            job = (await client.post("/v1/jobs", json=cost.URL_JOB, headers=headers)).json()["job_id"]
            await cost.cpu_ms_per_request(client, 50, 200, "GET", f"/v1/jobs/{job}", headers=headers)  # warm up
            read = await cost.cpu_ms_per_request(client, count, 200, "GET", f"/v1/jobs/{job}", headers=headers)
            submit = await cost.cpu_ms_per_request(
                client, 60, 202, "POST", "/v1/jobs", json=cost.URL_JOB, headers=headers
            )
    return read, submit


async def run(count: int) -> None:
    key = cost.new_tenant_key()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(3):
        for name in VARIANTS:
            figures[name].append(await measure(name, key, count))
    for name, rounds in figures.items():
        reads = " ".join(f"{read:.2f}" for read, _ in rounds)
        submits = " ".join(f"{submit:.2f}" for _, submit in rounds)
        print(f"{name:22s} read ms {reads}   submission ms {submits}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    asyncio.run(run(parser.parse_args().requests))


if __name__ == "__main__":
    main()
