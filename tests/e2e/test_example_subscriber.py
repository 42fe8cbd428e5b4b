"""The example subscriber, using only the contracts and the AsyncAPI document, receives finished jobs."""

import asyncio
import subprocess
import sys
from pathlib import Path

import aio_pika
import httpx
import pytest

from .conftest import pipeline_json
from .test_pipeline_end_to_end import photo

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_example_subscriber_prints_completed_jobs(stack, tenant_key, infra, namespace):
    queue = f"{namespace}.example-team"
    subscriber = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "subscriber" / "subscribe.py"),
            "--amqp-url",
            infra.amqp_url,
            "--asyncapi",
            f"{stack.gateway_url}/asyncapi.json",
            "--queue",
            queue,
            "--limit",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert subscriber.stdout is not None
        # The served document names this stack's exchange: no --exchange flag is needed under a namespace.
        assert f"<- {namespace}.events [job.completed.v1]" in subscriber.stdout.readline()
        with httpx.Client(base_url=stack.gateway_url, headers={"X-API-Key": tenant_key}, timeout=30) as client:
            job_id = client.post(
                "/v1/jobs", files={"file": ("p.jpg", photo())}, data={"pipeline": pipeline_json([{"op": "metadata"}])}
            ).json()["job_id"]
        output, _ = subscriber.communicate(timeout=60)
    finally:
        subscriber.kill()

        async def cleanup() -> None:
            connection = await aio_pika.connect(infra.amqp_url)
            async with connection:
                await (await connection.channel()).queue_delete(queue)

        asyncio.run(cleanup())
    assert subscriber.returncode == 0
    assert f"job {job_id} succeeded: application/json" in output
