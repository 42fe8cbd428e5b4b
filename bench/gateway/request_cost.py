"""CPU per request of the gateway's paths that a burst exercises, in one process, without HTTP or other load.

Drives the app in-process (httpx's ASGI transport, the real Postgres and Redis) and reports CPU milliseconds per
request, which stay comparable on a shared machine where wall-clock times do not:
  - `read`: tenant B's `GET /v1/jobs/{id}`;
  - `accepted`: a `POST /v1/jobs` (URL job) that is admitted: authentication, limits, a transaction;
  - `refused`: a `POST /v1/jobs` repeated after the tenant was refused (answered by the early-refusal middleware).

    .venv/bin/python bench/gateway/request_cost.py [--requests 300]
"""

import argparse
import asyncio
import json
import os
import subprocess
import time
from collections import Counter

import httpx

from pixtools_devstack.stack import BIN
from pixtools_gateway.app import create_app
from pixtools_gateway.settings import GatewaySettings

DATABASE_URL = "postgresql+asyncpg://postgres@localhost:5432/pixtools_bench"
URL_JOB = {"source_url": "https://burst.example/cat.jpg", "pipeline": [{"op": "metadata"}]}


def new_tenant_key(**limits: str) -> str:
    """A new tenant's API key, made with pixtools-admin, with its own `limits` (set-limits options)."""
    env = {**os.environ, "PIXTOOLS_DATABASE_URL": DATABASE_URL}
    name = f"cost-{os.urandom(4).hex()}"
    command = [str(BIN / "pixtools-admin"), "create-tenant", name]
    key = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    if limits:
        options = [part for option, value in limits.items() for part in (f"--{option.replace('_', '-')}", value)]
        subprocess.run([str(BIN / "pixtools-admin"), "set-limits", name, *options], env=env, check=True)
    return key


async def cpu_ms_per_request(
    client: httpx.AsyncClient, count: int, status: int, method: str, path: str, **kwargs: object
) -> float:
    """CPU milliseconds of this process per request, over `count` sequential requests (at least 95% `status`)."""
    started = time.process_time()
    statuses = Counter([(await client.request(method, path, **kwargs)).status_code for _ in range(count)])  # type: ignore[arg-type]
    spent = time.process_time() - started
    if statuses[status] < 0.95 * count:
        raise RuntimeError(f"{method} {path}: expected {status}, got {dict(statuses)}")
    return spent * 1000 / count


async def run(count: int, reader: str, burster: str) -> dict[str, float]:
    settings = GatewaySettings(
        database_url=DATABASE_URL,
        namespace="bench-cost",
        relay_enabled=False,
        redis_url="redis://localhost:6379/0",
        reads_per_s=1_000_000,
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            as_reader = {"X-API-Key": reader}
            job = (await client.post("/v1/jobs", json=URL_JOB, headers=as_reader)).json()["job_id"]
            read = await cpu_ms_per_request(client, count, 200, "GET", f"/v1/jobs/{job}", headers=as_reader)
            accepted = await cpu_ms_per_request(client, 40, 202, "POST", "/v1/jobs", json=URL_JOB, headers=as_reader)
            # The burster may submit 1 a second (bursts of 2): nearly all of its submissions are refused.
            refused = await cpu_ms_per_request(
                client, count, 429, "POST", "/v1/jobs", json=URL_JOB, headers={"X-API-Key": burster}
            )
    return {"read": read, "accepted": accepted, "refused": refused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    subprocess.run([str(BIN / "pixtools-admin"), "migrate"], env={**os.environ, "PIXTOOLS_DATABASE_URL": DATABASE_URL})
    burster = new_tenant_key(submissions_per_s="1")
    figures = asyncio.run(run(args.requests, new_tenant_key(), burster))
    print(json.dumps({name: round(value, 3) for name, value in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
