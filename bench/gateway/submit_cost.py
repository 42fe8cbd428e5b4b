"""CPU per multipart submission of the gateway, relay on, in one process, without HTTP parsing or other services.

Drives the app in-process against the real Postgres, RabbitMQ and a local blob directory: bursts of one-step
`convert(webp)` multipart jobs at a fixed concurrency, as `bench/pipeline` sends them, and reports this process's CPU
milliseconds per submission. The relay publishes each job's events with confirms to a queue of the script's own,
so the publishes are counted. Tracing is configured, and the loop is uvloop, as in the served gateway.

Two clients: `raw` (the default) calls the ASGI app directly with a body encoded once and handed over in 64 KiB
chunks, as uvicorn hands a socket's reads over, so nearly all of the figure is the gateway's own work; `httpx` goes
through httpx's ASGI transport, whose own work is about half of the figure (the earlier rounds' figures).
`--profile` also prints cProfile's top functions by own time, for a burst. `--solve` also reports the median CPU of
FastAPI's dependency solving for one submission (thread CPU around each top-level `solve_dependencies` of the submit
route, during one more burst): a figure that the other costs of a submission do not blur.

    .venv/bin/python bench/gateway/submit_cost.py [--jobs 300] [--rounds 3] [--client raw|httpx] [--profile] [--solve]
        [--database D] [--namespace N]
"""

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import fastapi.routing
import httpx
import uvloop
from PIL import Image
from starlette.types import ASGIApp, Message

from pixtools_devstack.stack import BIN
from pixtools_gateway.app import create_app
from pixtools_gateway.settings import GatewaySettings
from pixtools_platform.telemetry import configure_tracing

DATABASE = "pixtools_bench_submit_cost"
NAMESPACE = "bench-submit-cost"
AMQP_URL = "amqp://guest:guest@localhost:5672/"
PIPELINE = json.dumps([{"op": "convert", "params": {"format": "webp", "quality": 80}}])


def sample_jpeg() -> bytes:
    """A 640x480 noisy JPEG, about the size of bench/pipeline's."""
    buffer = io.BytesIO()
    Image.effect_noise((640, 480), 50).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def database_url(database: str) -> str:
    """The asyncpg URL of a database on the local Postgres server."""
    return f"postgresql+asyncpg://postgres@localhost:5432/{database}"


async def sink_queue(namespace: str) -> aio_pika.abc.AbstractConnection:
    """A bounded queue of the script's own, bound to every routing key, so that every publish is routable."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    events = await channel.declare_exchange(f"{namespace}.events", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(
        f"{namespace}.sink", durable=False, arguments={"x-max-length": 100, "x-overflow": "drop-head"}
    )
    await queue.bind(events, routing_key="#")
    return connection


def httpx_poster(client: httpx.AsyncClient, jpeg: bytes) -> Callable[[], Awaitable[int]]:
    """A submission through httpx's ASGI transport: the request is encoded again for every call."""

    async def post() -> int:
        files = {"file": ("image.jpg", jpeg, "image/jpeg")}
        response = await client.post("/v1/jobs", files=files, data={"pipeline": PIPELINE})
        return response.status_code

    return post


def raw_poster(app: ASGIApp, api_key: str, jpeg: bytes) -> Callable[[], Awaitable[int]]:
    """A submission straight into the ASGI app: the multipart body is encoded once, and sent in 64 KiB chunks."""
    files = {"file": ("image.jpg", jpeg, "image/jpeg")}
    encoded = httpx.Request("POST", "http://gateway.test/v1/jobs", files=files, data={"pipeline": PIPELINE})
    body = encoded.read()
    chunks = [body[start : start + 65536] for start in range(0, len(body), 65536)]
    headers = [
        (b"host", b"gateway.test"),
        (b"x-api-key", api_key.encode()),
        (b"content-type", encoded.headers["content-type"].encode()),
        (b"content-length", str(len(body)).encode()),
    ]

    async def post() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/jobs",
            "raw_path": b"/v1/jobs",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("gateway.test", 80),
            "state": {},
        }
        pending = list(chunks)
        finished = asyncio.Event()
        status = 0

        async def receive() -> Message:
            if pending:
                chunk = pending.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished.set()

        await app(scope, receive, send)
        return status

    return post


async def burst(post: Callable[[], Awaitable[int]], jobs: int, concurrency: int) -> tuple[float, float]:
    """CPU milliseconds per accepted submission over `jobs` submissions: of the process, and of the event loop's
    thread alone (without the blob store's writer threads, whose writes, fsyncs and renames vary with the disk)."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with gate:
            return await post()

    started, loop_started = time.process_time(), time.thread_time()
    statuses = await asyncio.gather(*(one() for _ in range(jobs)))
    spent, loop_spent = time.process_time() - started, time.thread_time() - loop_started
    if statuses.count(202) != jobs:
        raise RuntimeError(f"expected 202s, got {sorted(set(statuses))}")
    return spent * 1000 / jobs, loop_spent * 1000 / jobs


def timed_solving(samples: list[float]) -> Callable[[], None]:
    """Record the thread CPU of each top-level dependency solving of `POST /v1/jobs`; returns the undo."""
    solve = fastapi.routing.solve_dependencies

    async def timed(**kwargs: Any) -> Any:
        if kwargs["dependant"].call.__name__ != "submit":
            return await solve(**kwargs)
        started = time.thread_time()
        solved = await solve(**kwargs)
        samples.append(time.thread_time() - started)
        return solved

    fastapi.routing.solve_dependencies = timed  # type: ignore[assignment]

    def undo() -> None:
        fastapi.routing.solve_dependencies = solve

    return undo


async def run(args: argparse.Namespace) -> list[tuple[float, float]]:
    sink = await sink_queue(args.namespace)
    settings = GatewaySettings(
        database_url=database_url(args.database),
        namespace=args.namespace,
        amqp_url=AMQP_URL,
        blob_dir=tempfile.mkdtemp(prefix="submit-cost-"),
        submissions_per_s=1_000_000,
        reads_per_s=1_000_000,
        log_level="WARNING",
        seed_dev_tenant=True,
    )
    # As the served gateway does (`pixtools_gateway.app.main`): a real provider records each request's server span.
    configure_tracing("gateway", None)
    app = create_app(settings)
    figures = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", limits=limits) as client:
            client.headers["X-API-Key"] = settings.dev_api_key
            jpeg = sample_jpeg()
            raw = args.client == "raw"
            post = raw_poster(app, settings.dev_api_key, jpeg) if raw else httpx_poster(client, jpeg)
            await burst(post, 32, args.concurrency)  # warm up statements and connections
            for _ in range(args.rounds):
                figures.append(await burst(post, args.jobs, args.concurrency))
            if args.solve:
                samples: list[float] = []
                undo = timed_solving(samples)
                await burst(post, args.jobs, args.concurrency)
                undo()
                print(json.dumps({"solve_us_median": round(statistics.median(samples) * 1e6, 1), "n": len(samples)}))
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                await burst(post, args.jobs, args.concurrency)
                profile.disable()
                pstats.Stats(profile).sort_stats("tottime").print_stats(40)
            await asyncio.sleep(0.5)  # let the relay's marker run
    await sink.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--solve", action="store_true")
    # Each engineer's runs keep to a database and a namespace of their own.
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--namespace", default=NAMESPACE)
    args = parser.parse_args()
    env = {**os.environ, "PIXTOOLS_DATABASE_URL": database_url(args.database)}
    subprocess.run(["createdb", "-h", "localhost", "-U", "postgres", args.database], check=False)
    subprocess.run([str(BIN / "pixtools-admin"), "migrate"], env=env, check=True)
    # Nothing processes the jobs, so they pile up unfinished: each run starts from empty tables, so that the tenant
    # stays under its unfinished-jobs quota and every run (and build) counts and inserts into tables of one size.
    empty = ["psql", "-h", "localhost", "-U", "postgres", "-d", args.database, "-qc", "TRUNCATE jobs, outbox CASCADE"]
    subprocess.run(empty, check=True)
    # On uvloop, as uvicorn serves the gateway (`loop="auto"` with uvloop installed).
    figures = uvloop.run(run(args))
    print(
        json.dumps(
            {
                "cpu_ms_per_submission": [round(process, 3) for process, _ in figures],
                "loop_thread_cpu_ms_per_submission": [round(loop, 3) for _, loop in figures],
            }
        )
    )


if __name__ == "__main__":
    main()
