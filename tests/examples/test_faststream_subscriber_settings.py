"""The FastStream example subscriber takes its exchange and queue from PIXTOOLS_NAMESPACE, like every service."""

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest

from pixtools_contracts import JobCompleted, example_queue
from pixtools_platform.broker import Publisher, Topology

pytestmark = pytest.mark.integration
SUBSCRIBER = Path(__file__).resolve().parents[2] / "examples" / "subscriber" / "subscribe_faststream.py"


async def test_faststream_subscriber_hears_the_namespace_from_its_settings(infra, namespace) -> None:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PIXTOOLS_")}
    environ |= {"PIXTOOLS_AMQP_URL": infra.amqp_url, "PIXTOOLS_NAMESPACE": namespace}
    connection = await aio_pika.connect_robust(infra.amqp_url)
    publisher = await Publisher.open(connection, Topology(namespace))
    subscriber = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SUBSCRIBER),
        "--limit",
        "1",
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert subscriber.stdout is not None
        while not (line := (await asyncio.wait_for(subscriber.stdout.readline(), 30)).decode()).startswith("listening"):
            assert line, "the subscriber exited before listening"
        assert f"<- {namespace}.events [job.completed.v1]" in line
        event = JobCompleted(
            job_id=uuid.uuid4(),
            tenant_id=uuid.uuid4(),
            correlation_id="c",
            producer="aggregator",
            state="succeeded",
            outputs=[],
            submitted_at=datetime.now(UTC),
        )
        await publisher.publish(event)
        output = (await asyncio.wait_for(subscriber.stdout.read(), 30)).decode()
        assert await subscriber.wait() == 0
        assert f"job {event.job_id} succeeded: 0 outputs" in output
    finally:
        if subscriber.returncode is None:
            subscriber.kill()
        await (await connection.channel()).queue_delete(example_queue(namespace, "job.completed.v1"))
        await connection.close()
