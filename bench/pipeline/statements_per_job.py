"""Postgres statements, round trips and time per one-step job, by statement, for the whole stack.

Needs a Postgres server of its own with pg_stat_statements preloaded (the shared one has not), for example:

    initdb -D /tmp/pgs -A trust -U postgres
    echo "port=5499
    shared_preload_libraries='pg_stat_statements'
    pg_stat_statements.track=all
    track_io_timing=on" >> /tmp/pgs/postgresql.conf
    pg_ctl -D /tmp/pgs -l /tmp/pgs/log start
    flock /tmp/bench-pipeline.lock .venv/bin/python bench/pipeline/statements_per_job.py \\
        --server postgresql://postgres@localhost:5499

It runs the stack of bench_pipeline against that server, resets the statistics, sends --jobs one-step jobs
(`convert(webp)`) and waits for all of them, then reads each job --reads-per-job times, and prints every statement
with its calls, time and buffers per job (per read for the read phase). The counts do not depend on the machine's load.
"""

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import HEADERS, NAMESPACE, PORTS, ROOT, Completions, sample_jpeg, throughput

from pixtools_devstack.stack import running_stack

STATEMENTS = """
SELECT calls, total_exec_time, total_plan_time, plans, jit_functions,
       shared_blks_hit + shared_blks_read AS blocks, shared_blks_dirtied,
       wal_bytes, regexp_replace(query, '\\s+', ' ', 'g') AS query
FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid
WHERE d.datname = $1 AND calls > 0
ORDER BY total_exec_time DESC
"""
TRANSACTIONS = "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1"
TABLES = """
SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY relname
"""


def server_cpu_seconds(postmaster: int) -> float:
    """CPU seconds so far of the server: the postmaster and every process under it, with their reaped children."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[pid], spent[pid] = int(fields[1]), sum(map(int, fields[11:15])) / ticks
    total = 0.0
    for pid, seconds in spent.items():
        ancestor = pid
        while ancestor > 1 and ancestor != postmaster:
            ancestor = parents.get(ancestor, 0)
        total += seconds if ancestor == postmaster else 0.0
    return total


def parent_pid(pid: int) -> int:
    """The parent of a process on this machine."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def postmaster_pid(server: str, database: str) -> int:
    """The server's postmaster: the parent of a backend (the server must run on this machine)."""
    connection = await asyncpg.connect(f"{server}/{database}")
    try:
        # Read while the backend is still there: it exits when the connection closes.
        return parent_pid(await connection.fetchval("SELECT pg_backend_pid()"))
    finally:
        await connection.close()


async def phase(server: str, database: str) -> tuple[list[asyncpg.Record], list[asyncpg.Record], asyncpg.Record]:
    connection = await asyncpg.connect(f"{server}/{database}")
    try:
        statements, tables = await connection.fetch(STATEMENTS, database), await connection.fetch(TABLES)
        return statements, tables, await connection.fetchrow(TRANSACTIONS, database)
    finally:
        await connection.close()


async def reset(server: str, database: str) -> None:
    connection = await asyncpg.connect(f"{server}/{database}")
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await connection.execute("SELECT pg_stat_statements_reset(), pg_stat_reset()")
    finally:
        await connection.close()


def report(title: str, per: int, statements: list[asyncpg.Record], limit: int) -> None:
    calls = sum(row["calls"] for row in statements)
    time_ms = sum(row["total_exec_time"] for row in statements)
    plan_ms = sum(row["total_plan_time"] for row in statements)
    jit = sum(row["jit_functions"] for row in statements)
    print(
        f"\n## {title}: {calls / per:.2f} statements, {time_ms / per:.3f} ms of execution and {plan_ms / per:.3f} ms"
        f" of planning per unit ({per} units)"
    )
    print("(planning is counted where pg_stat_statements.track_planning is on)")
    print(f"functions JIT-compiled in the whole phase: {jit}")
    print("calls/unit  ms/unit  plans/unit  plan-ms/unit  blocks/unit  dirtied/unit  WAL-bytes/unit  statement")
    for row in statements[:limit]:
        print(
            f"{row['calls'] / per:10.2f}  {row['total_exec_time'] / per:7.3f}  {row['plans'] / per:10.2f}"
            f"  {row['total_plan_time'] / per:12.3f}  {row['blocks'] / per:11.1f}"
            f"  {row['shared_blks_dirtied'] / per:12.2f}  {float(row['wal_bytes']) / per:14.0f}  {row['query'][:160]}"
        )


async def run(args: argparse.Namespace, gateway_url: str) -> None:
    jpeg = sample_jpeg()
    completions = Completions()
    connection = await completions.listen(args.amqp_url)
    async with aiohttp.ClientSession(
        base_url=gateway_url, headers=HEADERS, connector=aiohttp.TCPConnector(limit=64)
    ) as client:
        _, _, warm = await throughput(client, completions, jpeg, 20, 4)
        for job_id in warm:
            async with client.get(f"/v1/jobs/{job_id}") as response:
                response.raise_for_status()
        await asyncio.sleep(2)  # let the warm-up's trailing work (outbox marks, key usage) finish
        await reset(args.server, args.database)
        postmaster = await postmaster_pid(args.server, args.database)
        cpu_before = server_cpu_seconds(postmaster)
        _, _, job_ids = await throughput(client, completions, jpeg, args.jobs, args.concurrency)
        await asyncio.sleep(args.settle_seconds)
        server_cpu = server_cpu_seconds(postmaster) - cpu_before
        written, tables, transactions = await phase(args.server, args.database)
        await reset(args.server, args.database)
        for _ in range(args.reads_per_job):
            for job_id in job_ids:
                async with client.get(f"/v1/jobs/{job_id}") as response:
                    response.raise_for_status()
                    await response.read()
        read, _, _ = await phase(args.server, args.database)
    await connection.close()
    report("write burst, per job", args.jobs, written, args.limit)
    wal = sum(float(row["wal_bytes"]) for row in written) / args.jobs
    commits, rollbacks = transactions["xact_commit"] / args.jobs, transactions["xact_rollback"] / args.jobs
    print(f"WAL {wal:.0f} bytes per job; transactions per job: {commits:.2f} committed, {rollbacks:.2f} rolled back")
    print(f"the server's CPU (all its processes, burst and settling): {1000 * server_cpu / args.jobs:.2f} ms per job")
    print("\ntable  inserted  updated  HOT-updated  deleted (whole burst)")
    for row in tables:
        print(f"{row['relname']}  {row['n_tup_ins']}  {row['n_tup_upd']}  {row['n_tup_hot_upd']}  {row['n_tup_del']}")
    report("reads, per GET /v1/jobs/{id}", args.jobs * args.reads_per_job, read, args.limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="postgresql://user@host:port, with pg_stat_statements")
    parser.add_argument("--database", default="pixtools_statements")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--reads-per-job", type=int, default=2)
    parser.add_argument("--settle-seconds", type=float, default=3.0, help="wait for the burst's trailing work")
    parser.add_argument("--limit", type=int, default=30, help="statements shown per phase")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    args = parser.parse_args()
    host = args.server.split("://", 1)[1]
    env = {
        "PIXTOOLS_NAMESPACE": NAMESPACE,
        "PIXTOOLS_DATABASE_URL": f"postgresql+asyncpg://{host}/{args.database}",
        "PIXTOOLS_BLOB_DIR": str(ROOT / "var" / "bench-blobs"),
        "PIXTOOLS_LOG_LEVEL": "WARNING",
        "PIXTOOLS_SUBMISSIONS_PER_S": "100000",
        "PIXTOOLS_READS_PER_S": "100000",
    }
    with running_stack(ROOT, env=env, ports=PORTS, gpu_stages=False) as stack:
        asyncio.run(run(args, stack.gateway_url))
    print(json.dumps({"jobs": args.jobs, "reads_per_job": args.reads_per_job}))


if __name__ == "__main__":
    main()
