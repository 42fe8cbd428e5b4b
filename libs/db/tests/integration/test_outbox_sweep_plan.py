"""The sweep's claim reads the rows still waiting through their index, not the deleted rows a vacuum has yet to
remove, whatever the table looked like when its connection planned it."""

import asyncio

import asyncpg
import pytest
from alembic import command
from sqlalchemy.dialects import postgresql

from pixtools_db.migrate import alembic_config
from pixtools_db.outbox import SWEEP_PLAN, OutboxRelay
from pixtools_testkit.fixtures import scratch_database

pytestmark = pytest.mark.integration

ROWS = """
INSERT INTO outbox (event_id, event_type, routing_key, body, headers)
SELECT gen_random_uuid(), 'job.cancelled.v1', 'job.cancelled.v1', convert_to(repeat('x', 1000), 'UTF8'), '{}'
FROM generate_series(1, $1)
"""


class NeverPublishes:
    async def publish_json(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("only the claim's plan is looked at")


def _sql(statement: object) -> str:
    compiled = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
    return str(compiled)


async def _sweep_plans(dsn: str) -> tuple[str, str]:
    """The claim's plan and buffers on two polls after many rows were deleted, run as the sweep runs it."""
    relay = OutboxRelay(None, NeverPublishes())  # type: ignore[arg-type]
    connection = await asyncpg.connect(dsn)

    async def poll(run: str) -> str:
        async with connection.transaction():
            await connection.execute(_sql(SWEEP_PLAN))
            return "\n".join(row[0] for row in await connection.fetch(run))

    try:
        # Vacuumed while empty, as a busy outbox is after each autovacuum; then no vacuum removes the deleted rows
        # while the test looks.
        await connection.execute("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        await connection.execute("VACUUM outbox")
        # A statement without parameters keeps the plan made at its first run: here, on an empty table.
        await connection.execute(f"PREPARE claim AS {_sql(relay.claim_waiting())}")
        await poll("EXECUTE claim")
        # Three thousand rows published and deleted since, and twenty waiting within their grace period.
        await connection.execute(ROWS, 3000)
        await connection.execute("DELETE FROM outbox")
        await connection.execute(ROWS, 20)
        return await poll("EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim"), await poll(
            "EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim"
        )
    finally:
        await connection.close()


def test_the_sweep_reads_waiting_rows_by_index_and_skips_deleted_ones_after_one_pass(infra):
    with scratch_database(infra.postgres_url, "pixtools_sweep_plan") as database:
        command.upgrade(alembic_config(database.url), "head")
        first, second = asyncio.run(_sweep_plans(database.dsn))
    assert "Index Scan using ix_outbox_unpublished on outbox" in second, second
    assert "Seq Scan" not in second, second
    assert "Bitmap" not in second, second
    # The first pass visits the deleted rows once and marks their index entries dead; the next reads a few pages
    # of the index and the waiting rows, where a scan of the heap reads its 430 pages on every poll.
    hits = int(second.split("shared hit=")[1].split()[0])
    assert hits < 60, second
    assert int(first.split("shared hit=")[1].split()[0]) > hits, first
