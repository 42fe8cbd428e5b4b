"""WAL and server CPU of the retention's outbox cleanup, per row it deletes, on a database a benchmark filled.

    .venv/bin/python bench/pipeline/outbox_retention_cost.py --server postgresql://postgres@localhost:5496 \\
        --database pixtools_statements_outbox_base

It runs the aggregator's own outbox step (`SqlRetentionRepository.delete_published_outbox`, with the cutoff at now,
`ROW_CHUNK` rows per transaction) until nothing is left to delete, and prints the rows deleted, the WAL the server
wrote and the CPU its live processes spent meanwhile. The server must be a private one on this machine: its WAL position
and its processes' CPU are read whole, so nothing else may run against it.
"""

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from statements_per_job import postmaster_pid

from pixtools_aggregator.adapters.retention import retention_transaction
from pixtools_aggregator.retention import ROW_CHUNK
from pixtools_db import create_engine, session_factory


def server_cpu_ns(postmaster: int) -> int:
    """Nanoseconds on CPU so far of the server's live processes (schedstat: finer than the 10 ms of /proc/stat,
    which a cleanup of a few thousand rows does not reach)."""
    parents: dict[int, int] = {}
    spent: dict[int, int] = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            spent[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return sum(ns for pid, ns in spent.items() if pid == postmaster or parents.get(pid) == postmaster)


COUNTS = (
    "SELECT count(*) FILTER (WHERE published_at IS NOT NULL), count(*) FILTER (WHERE published_at IS NULL) FROM outbox"
)


async def main(args: argparse.Namespace) -> None:
    host = args.server.split("://", 1)[1]
    connection = await asyncpg.connect(f"{args.server}/{args.database}")
    engine = create_engine(f"postgresql+asyncpg://{host}/{args.database}", pool_size=1)
    try:
        published, unpublished = await connection.fetchrow(COUNTS)
        print(f"outbox rows before: {published} marked published, {unpublished} unpublished")
        postmaster = await postmaster_pid(args.server, args.database)
        lsn_before = await connection.fetchval("SELECT pg_current_wal_lsn()")
        cpu_before = server_cpu_ns(postmaster)
        deleted = 0
        while True:
            async with retention_transaction(session_factory(engine)) as repository:
                chunk = await repository.delete_published_outbox(published_before=datetime.now(UTC), limit=ROW_CHUNK)
            deleted += chunk
            if chunk < ROW_CHUNK:
                break
        cpu = (server_cpu_ns(postmaster) - cpu_before) / 1e9
        wal = await connection.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", lsn_before)
    finally:
        await engine.dispose()
        await connection.close()
    per_row = f"{float(wal) / deleted:.0f} bytes and {1000 * cpu / deleted:.3f} ms per row" if deleted else "no rows"
    print(f"deleted {deleted} rows: {float(wal):.0f} bytes of WAL, {1000 * cpu:.1f} ms of server CPU ({per_row})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="postgresql://user@host:port of a private server")
    parser.add_argument("--database", required=True)
    asyncio.run(main(parser.parse_args()))
