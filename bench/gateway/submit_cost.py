"""CPU per multipart submission of the gateway, relay on, in one process, without HTTP parsing or other services.

Drives the app in-process (httpx's ASGI transport) against the real Postgres, RabbitMQ and a local blob directory:
bursts of one-step `convert(webp)` multipart jobs at a fixed concurrency, as `bench/pipeline` sends them, and
reports this process's CPU milliseconds per submission (the client's share included, the same for every build).
The relay publishes each job's events with confirms to a queue of the script's own, so the publishes are counted.
`--profile` also prints cProfile's top functions by own time, for a burst.

    .venv/bin/python bench/gateway/submit_cost.py [--jobs 300] [--rounds 3] [--profile]
"""

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import tempfile
import time

import aio_pika
import httpx
from PIL import Image

from pixtools_devstack.stack import BIN
from pixtools_gateway.app import create_app
from pixtools_gateway.settings import GatewaySettings

DATABASE_URL = "postgresql+asyncpg://postgres@localhost:5432/pixtools_bench_submit_cost"
NAMESPACE = "bench-submit-cost"
AMQP_URL = "amqp://guest:guest@localhost:5672/"
PIPELINE = json.dumps([{"op": "convert", "params": {"format": "webp", "quality": 80}}])


def sample_jpeg() -> bytes:
    """A 640x480 noisy JPEG, about the size of bench/pipeline's."""
    buffer = io.BytesIO()
    Image.effect_noise((640, 480), 50).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


async def sink_queue() -> aio_pika.abc.AbstractConnection:
    """A bounded queue of the script's own, bound to every routing key, so that every publish is routable."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    events = await channel.declare_exchange(f"{NAMESPACE}.events", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(
        f"{NAMESPACE}.sink", durable=False, arguments={"x-max-length": 100, "x-overflow": "drop-head"}
    )
    await queue.bind(events, routing_key="#")
    return connection


async def burst(client: httpx.AsyncClient, jpeg: bytes, jobs: int, concurrency: int) -> float:
    """CPU milliseconds of this process per accepted submission over `jobs` submissions."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with gate:
            files = {"file": ("image.jpg", jpeg, "image/jpeg")}
            response = await client.post("/v1/jobs", files=files, data={"pipeline": PIPELINE})
            return response.status_code

    started = time.process_time()
    statuses = await asyncio.gather(*(one() for _ in range(jobs)))
    spent = time.process_time() - started
    if statuses.count(202) != jobs:
        raise RuntimeError(f"expected 202s, got {sorted(set(statuses))}")
    return spent * 1000 / jobs


async def run(args: argparse.Namespace) -> list[float]:
    sink = await sink_queue()
    settings = GatewaySettings(
        database_url=DATABASE_URL,
        namespace=NAMESPACE,
        amqp_url=AMQP_URL,
        blob_dir=tempfile.mkdtemp(prefix="submit-cost-"),
        submissions_per_s=1_000_000,
        reads_per_s=1_000_000,
        log_level="WARNING",
        seed_dev_tenant=True,
    )
    app = create_app(settings)
    figures = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", limits=limits) as client:
            client.headers["X-API-Key"] = settings.dev_api_key
            jpeg = sample_jpeg()
            await burst(client, jpeg, 32, args.concurrency)  # warm up statements and connections
            for _ in range(args.rounds):
                figures.append(await burst(client, jpeg, args.jobs, args.concurrency))
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                await burst(client, jpeg, args.jobs, args.concurrency)
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
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "PIXTOOLS_DATABASE_URL": DATABASE_URL}
    subprocess.run(["createdb", "-h", "localhost", "-U", "postgres", DATABASE_URL.rsplit("/", 1)[1]], check=False)
    subprocess.run([str(BIN / "pixtools-admin"), "migrate"], env=env, check=True)
    figures = asyncio.run(run(args))
    print(json.dumps({"cpu_ms_per_submission": [round(value, 3) for value in figures]}))


if __name__ == "__main__":
    main()
