"""Where a read straight after the write burst spends its time: the HTTP round trip, the gateway, or Postgres.

Runs bench_pipeline's stack and its 300-job burst, then, straight after it and at the same time for --seconds:
  - GET /v1/jobs/{id} at --rate requests/s (open loop), timed by the client;
  - the gateway's own time for those requests (its pixtools_http_request_seconds histogram, before and after);
  - the read statement itself (handlers/job_query.py) sent straight to Postgres at --sql-rate statements/s;
  - pg_stat_activity every 20 ms: the benchmark database's backends that were not idle, and what they waited on.

    flock /tmp/bench-pipeline.lock .venv/bin/python bench/pipeline/read_after_burst.py --database pixtools_bench_NAME
"""

import argparse
import asyncio
import collections
import json
import re
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import (
    HEADERS,
    PORTS,
    ROOT,
    Completions,
    open_loop,
    percentile,
    read_latency,
    sample_jpeg,
    stack_env,
    throughput,
)

from pixtools_devstack.stack import running_stack
from pixtools_gateway.handlers.job_query import JOB_QUERY

ROUTE = 'route="/v1/jobs/{job_id}"'
ACTIVITY = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS waiting, left(query, 40) AS query
FROM pg_stat_activity WHERE datname = $1 AND state <> 'idle' AND pid <> pg_backend_pid()
"""


async def read_buckets(client: aiohttp.ClientSession) -> dict[float, float]:
    """Cumulative counts of the read route's histogram, by upper bound in seconds."""
    async with client.get("/metrics") as response:
        text = await response.text()
    buckets: dict[float, float] = collections.defaultdict(float)
    for line in text.splitlines():
        if line.startswith("pixtools_http_request_seconds_bucket") and ROUTE in line and 'method="GET"' in line:
            bound = re.search(r'le="([^"]+)"', line)
            if bound is not None:
                buckets[float(bound.group(1))] += float(line.rsplit(" ", 1)[1])
    return buckets


def server_share_above(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """Share of the gateway's read requests slower than each bucket bound."""
    total = after[float("inf")] - before[float("inf")]
    return {f">{bound * 1000:g}ms": 1 - (after[bound] - before[bound]) / total for bound in sorted(after) if bound < 1}


async def statement_latency(pool: asyncpg.Pool, job_ids: list[str], rate: float, seconds: float) -> list[float]:
    """The read statement straight to Postgres, open loop, on a pool of its own."""
    sql = str(JOB_QUERY.compile(dialect=postgresql.asyncpg.dialect())).replace("::UUID", "::uuid")
    # Older versions of the statement also filter by tenant ($2).
    tenant = await pool.fetchval("SELECT tenant_id FROM jobs WHERE id = $1::uuid", job_ids[0]) if "$2" in sql else None
    latencies: list[float] = []

    async def one(job_id: str) -> None:
        started = time.perf_counter()
        async with pool.acquire() as connection:
            await connection.fetchrow(sql, job_id, *([tenant] if tenant else []))
        latencies.append(time.perf_counter() - started)

    await open_loop(rate, seconds, job_ids, one)
    return latencies


async def sample_activity(pool: asyncpg.Pool, database: str, seconds: float) -> collections.Counter[str]:
    """How often each (wait, statement) pair was seen among the database's non-idle backends."""
    seen: collections.Counter[str] = collections.Counter()
    ends = time.perf_counter() + seconds
    async with pool.acquire() as connection:
        while time.perf_counter() < ends:
            for row in await connection.fetch(ACTIVITY, database):
                seen[f"{row['waiting']:28} {row['query']}"] += 1
            await asyncio.sleep(0.02)
    return seen


async def run(args: argparse.Namespace, gateway_url: str) -> dict[str, object]:
    jpeg = sample_jpeg()
    completions = Completions()
    connection = await completions.listen(args.amqp_url)
    pool = await asyncpg.create_pool(f"postgresql://postgres@localhost:5432/{args.database}", min_size=5, max_size=5)
    async with aiohttp.ClientSession(
        base_url=gateway_url, headers=HEADERS, connector=aiohttp.TCPConnector(limit=64)
    ) as client:
        await throughput(client, completions, jpeg, 20, 4)  # warm-up
        _, _, job_ids = await throughput(client, completions, jpeg, args.jobs, args.concurrency)
        before = await read_buckets(client)
        reads, statements, activity = await asyncio.gather(
            read_latency(client, job_ids, args.rate, args.seconds),
            statement_latency(pool, job_ids, args.sql_rate, args.seconds),
            sample_activity(pool, args.database, args.seconds),
        )
        after = await read_buckets(client)
    await pool.close()
    await connection.close()
    return {
        "http_p50_ms": round(percentile(reads, 0.5) * 1000, 2),
        "http_p99_ms": round(percentile(reads, 0.99) * 1000, 2),
        "gateway_share_slower_than": {key: round(value, 4) for key, value in server_share_above(before, after).items()},
        "statement_p50_ms": round(percentile(statements, 0.5) * 1000, 2),
        "statement_p99_ms": round(percentile(statements, 0.99) * 1000, 2),
        "pg_activity_samples": dict(activity.most_common(12)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="pixtools_bench")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sql-rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    args = parser.parse_args()
    with running_stack(ROOT, env=stack_env(args.database), ports=PORTS, gpu_stages=False) as stack:
        print(json.dumps(asyncio.run(run(args, stack.gateway_url)), indent=1))


if __name__ == "__main__":
    main()
