"""Detect (and, once it exists, denoise) through the gateway and real RabbitMQ."""

import asyncio
import io
import json

import httpx
import pytest
from PIL import Image

from .conftest import pipeline_json
from .harness import SHARED
from .test_pipeline_end_to_end import _first_message, _listen, wait_terminal

pytestmark = pytest.mark.e2e
PEOPLE = SHARED / "data" / "coco-sample" / "000000000885.jpg"


def test_detect_counts_people_and_stores_a_decodable_overlay(vision_stack, tenant_key, infra, namespace):
    assert PEOPLE.exists(), f"the COCO sample is expected at {PEOPLE}"
    loop = asyncio.new_event_loop()
    connection, queue = loop.run_until_complete(_listen(infra.amqp_url, namespace, "objects.detected.v1"))
    headers = {"X-API-Key": tenant_key}
    pipeline = [{"op": "detect", "params": {"overlay": True}}]
    with httpx.Client(base_url=vision_stack.gateway_url, headers=headers, timeout=60) as client:
        response = client.post(
            "/v1/jobs", files={"file": (PEOPLE.name, PEOPLE.read_bytes())}, data={"pipeline": pipeline_json(pipeline)}
        )
        assert response.status_code == 202, response.text
        job = wait_terminal(client, response.json()["job_id"], seconds=120)
        assert job["state"] == "succeeded", job
        [step] = job["steps"]
        assert step["result"]["counts"]["person"] >= 2
        assert all(len(detection["xyxy"]) == 4 for detection in step["result"]["detections"])
        overlay = next(output for output in job["outputs"] if output["name"] == "overlay")
        picture = Image.open(io.BytesIO(client.get(overlay["url"]).content))
        assert picture.format == "JPEG"
        assert picture.size == Image.open(PEOPLE).size
    event = json.loads(loop.run_until_complete(_first_message(queue)))
    loop.run_until_complete(connection.close())
    loop.close()
    assert event["job_id"] == job["job_id"]
    assert event["counts"]["person"] == step["result"]["counts"]["person"]
    assert event["overlay"]["key"].endswith("overlay.jpg")


def test_unknown_class_name_fails_the_step_with_the_valid_names(vision_stack, tenant_key):
    headers = {"X-API-Key": tenant_key}
    pipeline = [{"op": "detect", "params": {"classes": ["unicorn"]}}]
    with httpx.Client(base_url=vision_stack.gateway_url, headers=headers, timeout=60) as client:
        job_id = client.post(
            "/v1/jobs", files={"file": (PEOPLE.name, PEOPLE.read_bytes())}, data={"pipeline": pipeline_json(pipeline)}
        ).json()["job_id"]
        job = wait_terminal(client, job_id, seconds=120)
    assert job["state"] == "failed"
    error = job["steps"][0]["error"]
    assert error["code"] == "detect.unknown_class"
    assert "person" in error["message"]
