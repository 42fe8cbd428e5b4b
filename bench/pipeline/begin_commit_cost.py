"""Server and client CPU of a BEGIN/COMMIT pair around one write, against the same write in autocommit.

    .venv/bin/python bench/pipeline/begin_commit_cost.py 3000 postgresql://postgres@localhost:5497/postgres

The server must run on this machine (its backend's CPU is read from /proc); it creates and drops pgcost_scratch.
"""

import asyncio
import os
import sys
import time
from pathlib import Path

import asyncpg

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> float:
    """CPU seconds so far (user + system) of a process on this machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def main(n, dsn):
    c = await asyncpg.connect(dsn)
    await c.execute("CREATE TABLE IF NOT EXISTS pgcost_scratch (n int)")
    pid = await c.fetchval("SELECT pg_backend_pid()")
    insert = await c.prepare("INSERT INTO pgcost_scratch VALUES ($1)")
    for label in ("autocommit", "BEGIN+COMMIT", "autocommit", "BEGIN+COMMIT", "autocommit", "BEGIN+COMMIT"):
        s0, c0 = cpu(pid), time.process_time()
        for i in range(n):
            if label == "autocommit":
                await insert.fetch(i)
            else:
                await c.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                await insert.fetch(i)
                await c.execute("COMMIT")
        s1, c1 = cpu(pid), time.process_time()
        print(f"{label:14s} server {1e6 * (s1 - s0) / n:6.1f} us  client {1e6 * (c1 - c0) / n:6.1f} us per write")
    await c.execute("DROP TABLE pgcost_scratch")
    await c.close()


asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
