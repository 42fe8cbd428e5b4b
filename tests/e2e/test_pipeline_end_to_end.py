"""An upload travels gateway -> ingest -> aggregator -> signed webhook and a published result event."""

import asyncio
import base64
import hashlib
import hmac
import io
import json
import time

import aio_pika
import httpx
import pytest
from PIL import Image

from pixtools_contracts import JOB_TERMINAL
from pixtools_devstack.demo import EXAMPLE_PIPELINE

from .conftest import pipeline_json, read_sse

pytestmark = pytest.mark.e2e

# The end-to-end path is the one `make demo` runs.
EXAMPLE = EXAMPLE_PIPELINE


def photo(width: int = 640, height: int = 480) -> bytes:
    image = Image.effect_noise((width, height), 40).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def wait_terminal(client: httpx.Client, job_id: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in JOB_TERMINAL:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not terminal in {seconds}s: {job}")


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(f"v1,{expected}", item) for item in headers["webhook-signature"].split())


async def _listen(
    amqp_url: str, namespace: str, routing_key: str
) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractQueue]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(f"{namespace}.events", aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=routing_key)
    return connection, queue


async def _first_message(queue: aio_pika.abc.AbstractQueue, seconds: float = 30) -> bytes:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            return message.body
        await asyncio.sleep(0.1)
    raise AssertionError("no message arrived")


def test_upload_reaches_signed_webhook_and_job_completed_event(stack, tenant_key, webhook_receiver, infra, namespace):
    url, received = webhook_receiver
    loop = asyncio.new_event_loop()
    connection, queue = loop.run_until_complete(_listen(infra.amqp_url, namespace, "job.completed.v1"))
    headers = {"Authorization": f"Bearer {tenant_key}"}
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        secret = client.get("/v1/webhooks/secret").json()["secret"]
        response = client.post(
            "/v1/jobs",
            files={"file": ("photo.jpg", photo())},
            data={"pipeline": pipeline_json(EXAMPLE), "webhook_url": url},
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        job = wait_terminal(client, job_id)
        assert job["state"] == "succeeded", job
        assert [step["state"] for step in job["steps"]] == ["succeeded"] * 4
        assert [output["step"] for output in job["outputs"]] == ["1.0.0", "1.1.0", "1.2.0"], "outputs in tree order"
        by_type = {output["content_type"]: output for output in job["outputs"]}
        assert set(by_type) == {"image/webp", "image/avif", "application/json"}
        assert (by_type["image/webp"]["width"], by_type["image/webp"]["height"]) == (256, 192)
        download = client.get(by_type["image/avif"]["url"])
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == by_type["image/avif"]["sha256"]
        assert Image.open(io.BytesIO(download.content)).size == (256, 192)
        assert job["metadata"]["1.2.0"]["width"] == 256

    body = loop.run_until_complete(_first_message(queue))
    loop.run_until_complete(connection.close())
    loop.close()
    event = json.loads(body)
    assert event["type"] == "job.completed.v1"
    assert event["job_id"] == job_id
    assert len(event["outputs"]) == 3

    assert received.event.wait(30), "no webhook arrived"
    webhook_headers, webhook_body = received.calls[0]
    assert verify_signature(secret, webhook_headers, webhook_body)
    payload = json.loads(webhook_body)
    assert payload["type"] == "job.completed.v1"
    assert payload["data"]["job_id"] == job_id
    assert webhook_headers["traceparent"].split("-")[1] == trace_id, "one trace spans HTTP, stages and webhook"
    assert event["traceparent"].split("-")[1] == trace_id


def test_progress_streams_as_server_sent_events_until_the_job_ends(stack, tenant_key):
    headers = {"Authorization": f"Bearer {tenant_key}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        job_id = client.post(
            "/v1/jobs", files={"file": ("p.jpg", photo())}, data={"pipeline": pipeline_json(EXAMPLE)}
        ).json()["job_id"]
        events = read_sse(client, f"/v1/jobs/{job_id}/events")
    job_states = [data["state"] for name, data in events if name == "job"]
    assert job_states[-1] == "succeeded"
    finished_steps = {data["id"] for name, data in events if name == "step" and data["state"] == "succeeded"}
    assert finished_steps == {"0", "1.0.0", "1.1.0", "1.2.0"}


def test_corrupt_branch_input_fails_the_job_with_a_reason(stack, tenant_key):
    headers = {"Authorization": f"Bearer {tenant_key}"}
    truncated = photo()
    # A valid header with a cut-off body passes the gateway's header probe but cannot be decoded.
    truncated = truncated[: len(truncated) // 3]
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        response = client.post(
            "/v1/jobs",
            files={"file": ("cut.jpg", truncated)},
            data={"pipeline": pipeline_json([{"op": "convert", "params": {"format": "png"}}])},
        )
        assert response.status_code == 202, response.text
        job = wait_terminal(client, response.json()["job_id"])
    assert job["state"] == "failed"
    assert job["steps"][0]["error"]["code"] == "image.corrupt"
    assert job["outputs"] == []


def test_outputs_on_s3_storage_download_through_presigned_urls(s3_stack, tenant_key):
    headers = {"Authorization": f"Bearer {tenant_key}"}
    with httpx.Client(base_url=s3_stack.gateway_url, headers=headers, timeout=30) as client:
        job_id = client.post(
            "/v1/jobs", files={"file": ("p.jpg", photo())}, data={"pipeline": pipeline_json(EXAMPLE)}
        ).json()["job_id"]
        job = wait_terminal(client, job_id)
    assert job["state"] == "succeeded", job
    for output in job["outputs"]:
        assert "X-Amz-Signature" in output["url"], "S3 outputs are served by presigned URL"
        download = httpx.get(output["url"])
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == output["sha256"]
