"""The client's CPU per transaction of one statement, by how the transaction is opened and ended.

    .venv/bin/python bench/pipeline/transaction_cost.py --transactions 1500 --database pixtools_bench_txcost

Compares, in one process on uvloop as the services run: the aggregator's session transaction (`sessions.begin()`
with the statement on the session's asyncpg connection, as `job_transaction` runs a group before aggclient), a
connection from the engine's pool with an asyncpg transaction (what `group_transaction` does), asyncpg's own pool,
one dedicated asyncpg connection, and the statement alone. Each is warmed up, then timed with `time.process_time`.
"""

import argparse
import time
from collections.abc import Awaitable, Callable

import asyncpg
import uvloop

from pixtools_aggregator.adapters.transactions import driver_connection
from pixtools_db import create_engine, session_factory

STATEMENT = "SELECT 1"


async def measure(args: argparse.Namespace) -> None:
    url = f"postgresql+asyncpg://postgres@localhost:5432/{args.database}"
    engine = create_engine(url)
    sessions = session_factory(engine)
    pool = await asyncpg.create_pool(url.replace("+asyncpg", ""), min_size=2, max_size=2)
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))

    async def session() -> None:
        async with sessions.begin() as opened:
            await (await driver_connection(opened)).fetchval(STATEMENT)

    async def engine_pool() -> None:
        pooled = await engine.raw_connection()
        try:
            driver = pooled.driver_connection
            assert driver is not None
            async with driver.transaction():
                await driver.fetchval(STATEMENT)
        finally:
            pooled.close()

    async def asyncpg_pool() -> None:
        async with pool.acquire() as acquired, acquired.transaction():
            await acquired.fetchval(STATEMENT)

    async def dedicated() -> None:
        async with connection.transaction():
            await connection.fetchval(STATEMENT)

    async def statement_alone() -> None:
        await connection.fetchval(STATEMENT)

    cases: dict[str, Callable[[], Awaitable[None]]] = {
        "session (sessions.begin)": session,
        "engine pool + asyncpg transaction": engine_pool,
        "asyncpg pool + transaction": asyncpg_pool,
        "one asyncpg connection + transaction": dedicated,
        "statement alone, no transaction": statement_alone,
    }
    for round_number in range(1, args.rounds + 1):
        for name, case in cases.items():
            for _ in range(100):
                await case()
            started = time.process_time()
            for _ in range(args.transactions):
                await case()
            per_call = (time.process_time() - started) / args.transactions * 1e6
            print(f"round {round_number}  {name:40s} {per_call:7.1f} µs of client CPU")
    await connection.close()
    await pool.close()
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default="pixtools_bench_txcost", help="any existing database")
    args = parser.parse_args()
    uvloop.run(measure(args))


if __name__ == "__main__":
    main()
