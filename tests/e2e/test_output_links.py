"""With S3 storage, job.completed.v1 carries a signed link to each output that fetches it without credentials."""

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import aio_pika
import httpx
import pytest

from pixtools_contracts import JobCompleted

from .conftest import pipeline_json
from .test_pipeline_end_to_end import photo

pytestmark = pytest.mark.e2e


async def _next_completed(amqp_url: str, exchange: str, submit: object) -> JobCompleted:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "job.completed.v1")
        await asyncio.to_thread(submit)  # type: ignore[arg-type]
        async with queue.iterator(timeout=60) as messages:
            async for message in messages:
                await message.ack()
                return JobCompleted.model_validate_json(message.body)
    raise AssertionError("no job.completed.v1 arrived")


def test_completed_event_on_s3_lists_signed_links_that_fetch_each_output(s3_stack, tenant_key, infra, namespace):
    submitted: list[str] = []

    def submit() -> None:
        with httpx.Client(base_url=s3_stack.gateway_url, headers={"X-API-Key": tenant_key}, timeout=30) as client:
            response = client.post(
                "/v1/jobs",
                files={"file": ("p.jpg", photo())},
                data={"pipeline": pipeline_json([{"op": "convert", "params": {"format": "png"}}])},
            )
            submitted.append(response.json()["job_id"])

    event = asyncio.run(_next_completed(infra.amqp_url, f"{namespace}.events", submit))
    assert str(event.job_id) == submitted[0]
    [output] = event.outputs
    assert output.url is not None
    assert "X-Amz-Signature" in output.url
    assert output.url_expires_at is not None
    assert output.url_expires_at > datetime.now(UTC) + timedelta(hours=23), "signed for the default 24 hours"
    assert output.download_path == f"/v1/jobs/{event.job_id}/outputs/{output.output_id}"
    fetched = httpx.get(output.url, timeout=30)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == output.sha256
