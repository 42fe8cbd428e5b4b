"""The job's INSERT run on the pooled connection's asyncpg connection, against the real Postgres."""

import secrets
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from pixtools_contracts import ObjectRef, original_key
from pixtools_db import create_engine, session_factory
from pixtools_gateway.handlers.submit import Submission, Upload, _execute_on_driver, _job_statement
from pixtools_gateway.handlers.tenants import create_tenant
from pixtools_gateway.pipelines import parse_pipeline

pytestmark = pytest.mark.integration

# A fork, so that the statement has several steps, and a webhook and an idempotency key, so that no column is null
# only because the example left it out.
PIPELINE = parse_pipeline(
    [
        {"op": "resize", "params": {"width": 256}},
        {"parallel": [[{"op": "convert", "params": {"format": "webp", "quality": 80}}], [{"op": "metadata"}]]},
    ]
)
# Columns that differ between two jobs by construction: ids, keys derived from them, and timestamps (the outbox
# rows are found by their events' ids).
_OWN = {"id", "job_id", "event_id", "step_id", "parent_id", "input_key", "idempotency_key", "created_at", "updated_at"}


def _job(tenant_id: uuid.UUID, key: str):
    submission = Submission(
        tenant_id=tenant_id,
        upload=Upload(b"\xff\xd8 not decoded here", "image/jpeg", 640, 480, name="photo.jpg"),
        pipeline=PIPELINE,
        webhook_url="https://hooks.example/done",
        idempotency_key=key,
        correlation_id="correlation-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    job_id = uuid.uuid4()
    original = ObjectRef(
        key=original_key(tenant_id, job_id),
        content_type="image/jpeg",
        bytes=21,
        sha256="0" * 64,
        width=640,
        height=480,
    )
    _, encoded, statement, parameters = _job_statement(job_id, submission, original, fingerprint="f" * 64)
    return job_id, encoded, statement, parameters


@pytest.fixture
async def writer(database_url):
    engine = create_engine(database_url, pool_size=1)
    yield engine.execution_options(isolation_level="AUTOCOMMIT")
    await engine.dispose()


@pytest.fixture
async def tenant_id(writer) -> uuid.UUID:
    async with session_factory(writer).begin() as session:
        tenant, _ = await create_tenant(session, name=f"driver-{secrets.token_hex(4)}")
    return tenant.id


async def _rows(writer, job_id: uuid.UUID, event_ids: list[object]) -> dict[str, list[dict]]:
    queries = {
        "jobs": ("SELECT * FROM jobs WHERE id = :key", job_id),
        "steps": ("SELECT * FROM steps WHERE job_id = :key ORDER BY position", job_id),
        "outbox": ("SELECT * FROM outbox WHERE event_id = ANY(:key) ORDER BY event_type", event_ids),
    }
    found = {}
    async with writer.connect() as connection:
        for table, (query, key) in queries.items():
            rows = (await connection.execute(text(query), {"key": key})).mappings().all()
            found[table] = [{column: value for column, value in row.items() if column not in _OWN} for row in rows]
    return found


async def test_the_job_insert_on_the_driver_writes_the_rows_sqlalchemy_would(writer, tenant_id):
    written = {}
    for way in ("sqlalchemy", "driver"):
        job_id, encoded, statement, parameters = _job(tenant_id, f"order-{way}")
        async with writer.connect() as connection:
            if way == "sqlalchemy":
                await connection.execute(statement, parameters)
            else:
                await _execute_on_driver(connection, statement, parameters)
        written[way] = await _rows(writer, job_id, [event.event_id for event in encoded])
        # The outbox bodies hold each event's own id and time; the rest of the row must match.
        bodies = [row.pop("body") for row in written[way]["outbox"]]
        assert bodies == [event.body for event in sorted(encoded, key=lambda event: event.event_type)]
    assert [len(written["driver"][table]) for table in ("jobs", "steps", "outbox")] == [1, 3, 2]
    assert written["driver"] == written["sqlalchemy"]


async def test_a_repeated_idempotency_key_fails_the_whole_insert_and_keeps_the_connection(writer, tenant_id):
    _, _, statement, parameters = _job(tenant_id, "order-twice")
    async with writer.connect() as connection:
        await _execute_on_driver(connection, statement, parameters)
        job_id, encoded, statement, parameters = _job(tenant_id, "order-twice")
        with pytest.raises(asyncpg.UniqueViolationError):
            await _execute_on_driver(connection, statement, parameters)
        assert not connection.invalidated
    assert await _rows(writer, job_id, [event.event_id for event in encoded]) == {"jobs": [], "steps": [], "outbox": []}


async def test_a_connection_broken_under_the_insert_is_invalidated_and_the_next_insert_gets_a_new_one(
    writer, tenant_id
):
    # Two connections at once, the first returned to the pool (of one) first: the second, an overflow, is closed on
    # return, and the pool keeps the first, ended from outside meanwhile, as a restart or a failover ends it.
    first, second = await writer.connect(), await writer.connect()
    broken = (await first.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await second.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": broken})
    await first.close()
    await second.close()
    _, _, statement, parameters = _job(tenant_id, "order-after-break")
    async with writer.connect() as connection:
        assert (await connection.get_raw_connection()).driver_connection.get_server_pid() == broken
        # How the ended connection shows depends on when asyncpg reads the server's goodbye.
        ended = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, ConnectionError)
        with pytest.raises(ended):
            await _execute_on_driver(connection, statement, parameters)
        assert connection.invalidated
    job_id, encoded, statement, parameters = _job(tenant_id, "order-after-break")
    async with writer.connect() as connection:
        assert (await connection.get_raw_connection()).driver_connection.get_server_pid() != broken
        await _execute_on_driver(connection, statement, parameters)
    assert len((await _rows(writer, job_id, [event.event_id for event in encoded]))["jobs"]) == 1
