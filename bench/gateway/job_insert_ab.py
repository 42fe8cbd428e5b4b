"""The job's INSERT through SQLAlchemy's execution against the same on the driver (gwsubmit), in one process.

Both ways build the real statement of a one-step convert(webp) job (`_job_statement`), check a connection out of an
autocommit engine and run the INSERT, on the local Postgres, rounds of sequential jobs alternated between the two
ways; it reports the event loop thread's CPU per job. Run `submit_cost.py` once first: it creates and migrates the
database.

    flock /tmp/bench.lock .venv/bin/python bench/gateway/job_insert_ab.py [--database D] [--rounds 8] [--jobs 300]
"""

import argparse
import json
import statistics
import time
import uuid
from typing import Any

import uvloop
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pixtools_contracts import ObjectRef, original_key
from pixtools_db import create_engine
from pixtools_gateway.handlers.submit import Submission, Upload, _execute_on_driver, _job_statement
from pixtools_gateway.pipelines import parse_pipeline

PIPELINE = parse_pipeline([{"op": "convert", "params": {"format": "webp", "quality": 80}}])


def job(tenant_id: uuid.UUID) -> tuple[TextClause, dict[str, Any]]:
    """The statement and parameters of one new job, as `submit_job` builds them."""
    submission = Submission(
        tenant_id=tenant_id,
        upload=Upload(b"x", "image/jpeg", 640, 480),
        pipeline=PIPELINE,
        webhook_url=None,
        idempotency_key=None,
        correlation_id=str(uuid.uuid4()),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    job_id = uuid.uuid4()
    original = ObjectRef(
        key=original_key(tenant_id, job_id), content_type="image/jpeg", bytes=1, sha256="0" * 64, width=640, height=480
    )
    _, _, statement, parameters = _job_statement(job_id, submission, original, fingerprint="f" * 64)
    return statement, parameters


async def sqlalchemy_way(writer: AsyncEngine, tenant_id: uuid.UUID) -> None:
    statement, parameters = job(tenant_id)
    async with writer.connect() as connection:
        await connection.execute(statement, parameters)


async def driver_way(writer: AsyncEngine, tenant_id: uuid.UUID) -> None:
    statement, parameters = job(tenant_id)
    async with writer.connect() as connection:
        await _execute_on_driver(connection, statement, parameters)


async def run(args: argparse.Namespace) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@localhost:5432/{args.database}")
    writer = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with writer.connect() as connection:
        tenant_id = (await connection.execute(text("SELECT id FROM tenants LIMIT 1"))).scalar_one()
    ways = {"sqlalchemy": sqlalchemy_way, "driver": driver_way}
    figures: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():  # warm up: statements prepared, connections open
        for _ in range(50):
            await way(writer, tenant_id)
    for number in range(args.rounds):
        order = list(ways) if number % 2 == 0 else list(reversed(ways))
        for name in order:
            started = time.thread_time()
            for _ in range(args.jobs):
                await ways[name](writer, tenant_id)
            figures[name].append(round((time.thread_time() - started) * 1e6 / args.jobs, 1))
    await engine.dispose()
    pairs = zip(figures["driver"], figures["sqlalchemy"], strict=True)
    ratios = [round(driver / sqlalchemy, 3) for driver, sqlalchemy in pairs]
    medians = {name: statistics.median(values) for name, values in figures.items()}
    print(json.dumps({"cpu_us_per_job": figures, "median": medians, "ratio": ratios}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="pixtools_bench_submit_cost")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=300)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
