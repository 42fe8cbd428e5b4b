"""A FastStream consumer that knows only the served AsyncAPI document receives job.completed.v1 under a namespace."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aio_pika
import httpx
import pytest
from jsonschema import Draft202012Validator

from .conftest import pipeline_json
from .test_pipeline_end_to_end import photo

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _start_subscriber(amqp_url: str, asyncapi_url: str) -> subprocess.Popen[str]:
    # Nothing of this stack's settings but the broker URL: the names come from the served document.
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PIXTOOLS_")}
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "subscriber" / "subscribe_faststream.py"),
            *("--asyncapi", asyncapi_url, "--limit", "1"),
        ],
        env={**environ, "PIXTOOLS_AMQP_URL": amqp_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_until_listening(subscriber: subprocess.Popen[str]) -> str:
    assert subscriber.stdout is not None
    for line in subscriber.stdout:
        if line.startswith("listening on"):
            return line
    raise AssertionError(f"the subscriber exited before listening (code {subscriber.wait()})")


def test_faststream_subscriber_from_the_served_document_receives_completed_jobs(stack, tenant_key, infra, namespace):
    document = httpx.get(f"{stack.gateway_url}/asyncapi.json", timeout=30).json()
    queue = document["operations"]["receive_job.completed.v1"]["x-example-queue"]
    subscriber = _start_subscriber(infra.amqp_url, f"{stack.gateway_url}/asyncapi.json")
    try:
        listening = _wait_until_listening(subscriber)
        assert listening.strip() == f"listening on {queue} <- {namespace}.events [job.completed.v1]"
        with httpx.Client(base_url=stack.gateway_url, headers={"X-API-Key": tenant_key}, timeout=30) as client:
            job_id = client.post(
                "/v1/jobs", files={"file": ("p.jpg", photo())}, data={"pipeline": pipeline_json([{"op": "metadata"}])}
            ).json()["job_id"]
            output, _ = subscriber.communicate(timeout=60)
            assert subscriber.returncode == 0, output
            [payload_line] = [line for line in output.splitlines() if line.startswith("payload ")]
            payload = json.loads(payload_line.removeprefix("payload "))
            validator = Draft202012Validator({**document, "$ref": "#/components/schemas/JobCompleted"})
            assert [error.message for error in validator.iter_errors(payload)] == []
            assert (payload["type"], payload["job_id"], payload["state"]) == ("job.completed.v1", job_id, "succeeded")
            # The event says how to fetch each output; the local blob store signs no links.
            [listed] = payload["outputs"]
            assert listed["download_path"] == f"/v1/jobs/{job_id}/outputs/{listed['output_id']}"
            assert listed.get("url") is None
            fetched = client.get(listed["download_path"])
            assert fetched.status_code == 200
            assert len(fetched.content) == listed["bytes"]
    finally:
        subscriber.kill()

        async def cleanup() -> None:
            connection = await aio_pika.connect(infra.amqp_url)
            async with connection:
                await (await connection.channel()).queue_delete(queue)

        asyncio.run(cleanup())
