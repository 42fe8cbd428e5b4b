"""The running service: readiness, change notifications and dead-lettering of events it can never apply."""

import asyncio
import socket
import uuid

import aio_pika
import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from pixtools_contracts import StepStarted
from pixtools_platform.broker import Topology

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_readiness_reports_database_and_broker_and_metrics_are_served(start_aggregator):
    port = free_port()
    await start_aggregator(ops_host="127.0.0.1", ops_port=port)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "consumer": "ok"}
    assert "pixtools_webhook_attempts_total" in metrics.text


async def test_job_changes_are_announced_on_the_jobs_channel(start_aggregator, publisher, db, database_url):
    await start_aggregator()
    job = await db.job([{"op": "convert", "params": {"format": "webp"}}])
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(url)
    announced: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("pixtools_jobs", lambda *args: announced.put_nowait(args[-1]))
    try:
        await publisher.publish(job.started("0"))
        payload = await asyncio.wait_for(announced.get(), timeout=10)
    finally:
        await listener.close()
    assert payload == str(job.id)


async def test_event_for_an_unknown_job_is_dead_lettered_with_its_reason(start_aggregator, publisher, infra, namespace):
    await start_aggregator()
    stray = StepStarted(
        step_id="0", op="resize", job_id=uuid.uuid4(), tenant_id=uuid.uuid4(), correlation_id="c", producer="ingest"
    )
    await publisher.publish(stray)

    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(Topology(namespace).dead_letter_queue("aggregator"), passive=True)
        for _ in range(200):
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    assert message is not None
    assert str(stray.job_id) in str(message.headers["x-death-reason"])
