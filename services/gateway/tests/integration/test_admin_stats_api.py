"""Admin statistics: queue depths from RabbitMQ (management API or AMQP), stage, job and outbox figures from Postgres.

This module has a database of its own, so the figures count only the rows its tests write.
"""

import asyncio
import os
import secrets
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pixtools_db import Job, Outbox, Step, Tenant, create_engine, session_factory, upgrade

from .admin_support import (
    as_admin,
    eventually,
    gateway,
    new_admin_key,
    problem,
    rabbit,
    step_requested,
    step_started,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url(infra) -> Iterator[str]:
    """A migrated database for this module only (overrides the session-wide one)."""
    server = make_url(infra.postgres_url)
    url = server.set(database=f"pixtools_admin_{secrets.token_hex(4)}").render_as_string(hide_password=False)
    admin = server.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)

    async def drop() -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
        finally:
            await connection.close()

    # Migrations run their own event loop: keep them off the test loop's thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade, url).result()
    yield url
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, drop()).result()


@pytest_asyncio.fixture
async def admin_key(database_url) -> str:
    return await new_admin_key(database_url)


@pytest_asyncio.fixture
async def broker(infra, namespace):
    async with rabbit(infra.amqp_url, namespace) as opened:
        yield opened


@pytest_asyncio.fixture
async def sessions(database_url):
    engine = create_engine(database_url, pool_size=2)
    found = session_factory(engine)
    async with found.begin() as session:
        # Start from nothing: the figures below are exact.
        await session.execute(text("TRUNCATE jobs, outbox CASCADE"))
    yield found
    await engine.dispose()


async def _stats(client, key, **params) -> dict:
    response = await client.get("/v1/admin/stats", params=params, headers=as_admin(key))
    assert response.status_code == 200, response.text
    return response.json()


def _queues(stats: dict) -> dict[str, dict]:
    return {queue["name"]: queue for queue in stats["queues"]}


async def _hold(message: AbstractIncomingMessage) -> None:
    """A consumer that never acks: its messages stay unacked while its channel lives."""


async def _management_url(amqp_url: str) -> str:
    """The management API beside the test broker (`.ci/run` enables the plugin); its absence fails the test."""
    url = (
        os.environ.get("PIXTOOLS_TEST_RABBITMQ_MANAGEMENT_URL")
        or f"http://guest:guest@{urlsplit(amqp_url).hostname}:15672"
    )
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            (await client.get(f"{url}/api/overview")).raise_for_status()
    except httpx.HTTPError as error:
        pytest.fail(
            f"no RabbitMQ management API at {url} ({error}): run `rabbitmq-plugins enable rabbitmq_management` "
            "or set PIXTOOLS_TEST_RABBITMQ_MANAGEMENT_URL"
        )
    return url


async def test_queue_figures_come_from_amqp_when_no_management_api_is_configured(api, admin_key, broker):
    for _ in range(3):
        await broker.publisher.publish(step_requested())
    for index in range(2):
        await broker.dead_letter("ingest", b"{}", message_id=f"m{index}", reason="poison", routing_key="x")
    listening = await broker.probe.get_queue(broker.topology.queue("aggregator"), ensure=False)
    await listening.consume(_hold)
    topology = broker.topology

    stats = await eventually(
        lambda: _stats(api.client, admin_key),
        lambda found: _queues(found)[topology.dead_letter_queue("ingest")]["ready"] == 2,
    )

    assert (stats["queue_source"], stats["queue_source_error"]) == ("amqp", None)
    queues = _queues(stats)
    assert len(queues) == 14
    assert queues[topology.queue("ingest")] == {
        "name": topology.queue("ingest"),
        "service": "ingest",
        "role": "work",
        "exists": True,
        "ready": 3,
        "unacked": None,
        "consumers": 0,
    }
    assert queues[topology.dead_letter_queue("ingest")]["ready"] == 2
    assert queues[topology.queue("aggregator")]["consumers"] == 1
    assert queues[topology.queue("denoise.bulk")] | {"name": None} == {
        "name": None,
        "service": "denoise.bulk",
        "role": "work",
        "exists": False,
        "ready": 0,
        "unacked": 0,
        "consumers": 0,
    }


async def test_queue_figures_come_from_the_management_api_with_unacked_counts(
    gateway_settings, database_url, admin_key, broker
):
    settings = gateway_settings.model_copy(
        update={"rabbitmq_management_url": await _management_url(gateway_settings.amqp_url)}
    )
    for _ in range(3):
        await broker.publisher.publish(step_requested())
    await broker.publisher.publish(step_started())
    held = await broker.probe.get_queue(broker.topology.queue("ingest"), ensure=False)
    assert await held.get(no_ack=False, fail=False) is not None  # delivered, not acked: unacked until the end
    listening = await broker.probe.get_queue(broker.topology.queue("aggregator"), ensure=False)
    await listening.consume(_hold)  # holds the one message unacked, too
    ingest, aggregator = broker.topology.queue("ingest"), broker.topology.queue("aggregator")

    async with gateway(settings) as client:
        # The management API samples each queue's message counts every few seconds, one queue at a time (a queue
        # not sampled yet has none; its consumer count is current at once): wait for both queues to catch up.
        stats = await eventually(
            lambda: _stats(client, admin_key),
            lambda found: (
                (_queues(found)[ingest]["ready"], _queues(found)[ingest]["unacked"]) == (2, 1)
                and (_queues(found)[aggregator]["unacked"], _queues(found)[aggregator]["consumers"]) == (1, 1)
            ),
            seconds=40,
        )

    assert (stats["queue_source"], stats["queue_source_error"]) == ("management", None)
    queues = _queues(stats)
    assert (queues[ingest]["ready"], queues[ingest]["unacked"]) == (2, 1)
    assert (queues[aggregator]["unacked"], queues[aggregator]["consumers"]) == (1, 1)
    assert queues[broker.topology.queue("denoise")]["exists"] is False


async def test_queue_figures_fall_back_to_amqp_when_the_management_api_does_not_answer(
    gateway_settings, database_url, admin_key, broker
):
    settings = gateway_settings.model_copy(update={"rabbitmq_management_url": "http://guest:guest@127.0.0.1:9"})
    await broker.publisher.publish(step_requested())

    async with gateway(settings) as client:
        stats = await _stats(client, admin_key)

    assert stats["queue_source"] == "amqp"
    assert "ConnectError" in stats["queue_source_error"]
    assert _queues(stats)[broker.topology.queue("ingest")]["ready"] == 1


async def _job(session, tenant_id: uuid.UUID, state: str) -> uuid.UUID:
    job = Job(
        id=uuid.uuid4(), tenant_id=tenant_id, state=state, pipeline=[], step_count=1, leaf_count=1, correlation_id="c"
    )
    session.add(job)
    await session.flush()
    return job.id


def _step(job_id, step_id: str, op: str, state: str, finished_ago: timedelta | None, duration_ms: int = 0) -> Step:
    finished = None if finished_ago is None else datetime.now(UTC) - finished_ago
    return Step(
        job_id=job_id,
        step_id=step_id,
        position=0,
        op=op,
        params={},
        is_leaf=True,
        state=state,
        started_at=None if finished is None else finished - timedelta(milliseconds=duration_ms),
        finished_at=finished,
    )


async def test_stage_figures_are_sql_percentiles_of_recent_step_durations_and_jobs_count_by_state(
    api, admin_key, sessions
):
    recent, long_ago = timedelta(minutes=1), timedelta(hours=2)
    async with sessions.begin() as session:
        tenant = Tenant(id=uuid.uuid4(), name=f"stats-{secrets.token_hex(4)}", webhook_secret="s")
        session.add(tenant)
        await session.flush()
        states = ["accepted", "running", "running", "succeeded", "succeeded", "succeeded", "failed"]
        job_ids = [await _job(session, tenant.id, state) for state in states]
        job_id = job_ids[-1]
        session.add_all(_step(job_id, f"r{i}", "resize", "succeeded", recent, 100 * (i + 1)) for i in range(10))
        session.add_all(_step(job_id, f"f{i}", "resize", "failed", recent, 5000) for i in range(2))
        session.add(_step(job_id, "old", "resize", "succeeded", long_ago, 99_000))
        session.add_all(_step(job_id, f"d{i}", "detect", "succeeded", recent, ms) for i, ms in enumerate((50, 150)))
        session.add(_step(job_id, "later", "convert", "pending", None))

    stats = await _stats(api.client, admin_key)
    wider = await _stats(api.client, admin_key, minutes=180)

    stages = {stage["op"]: stage for stage in stats["stages"]}
    assert set(stages) == {"resize", "convert", "metadata", "denoise", "detect"}
    assert stats["window_minutes"] == 15
    assert stages["resize"] == {
        "op": "resize",
        "service": "ingest",
        "completed": 10,
        "failed": 2,
        "throughput_per_minute": pytest.approx(12 / 15, abs=0.001),
        "p50_ms": pytest.approx(550),  # percentile_cont over 100..1000 ms; failed steps do not count
        "p95_ms": pytest.approx(955),
    }
    assert (stages["detect"]["service"], stages["detect"]["p50_ms"], stages["detect"]["p95_ms"]) == (
        "detect",
        pytest.approx(100),
        pytest.approx(145),
    )
    assert (
        stages["convert"]["completed"],
        stages["convert"]["p50_ms"],
        stages["convert"]["throughput_per_minute"],
    ) == (
        0,
        None,
        0,
    )
    assert {stage["op"]: stage["completed"] for stage in wider["stages"]}["resize"] == 11
    assert stats["jobs"] == {
        "accepted": 1,
        "running": 2,
        "succeeded": 3,
        "partially_failed": 0,
        "failed": 1,
        "cancelled": 0,
    }
    for minutes in (0, 1441):
        response = await api.client.get("/v1/admin/stats", params={"minutes": minutes}, headers=as_admin(admin_key))
        problem(response, 422, "invalid-request")


async def test_outbox_backlog_counts_unpublished_rows_and_names_the_oldest(api, admin_key, sessions):
    now = datetime.now(UTC)

    def row(routing_key: str, age_s: float, published: bool, error: str | None = None) -> Outbox:
        return Outbox(
            event_id=uuid.uuid4(),
            event_type=routing_key,
            routing_key=routing_key,
            body=b"{}",
            headers={},
            created_at=now - timedelta(seconds=age_s),
            published_at=now if published else None,
            last_error=error,
        )

    empty = (await _stats(api.client, admin_key))["outbox"]
    async with sessions.begin() as session:
        session.add_all(
            [
                row("job.submitted.v1", 600, True),
                row("step.requested.v1.denoise", 90, False, "no queue is bound to 'step.requested.v1.denoise'"),
                row("job.submitted.v1", 1, False),
            ]
        )

    outbox = (await _stats(api.client, admin_key))["outbox"]

    assert empty == {"unpublished": 0, "oldest_age_s": None, "oldest_routing_key": None, "oldest_error": None}
    assert outbox["unpublished"] == 2
    assert 90 <= outbox["oldest_age_s"] < 150
    assert outbox["oldest_routing_key"] == "step.requested.v1.denoise"
    assert "no queue is bound" in outbox["oldest_error"]
