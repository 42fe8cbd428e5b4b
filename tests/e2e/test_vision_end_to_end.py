"""Denoise and detect through the gateway and real RabbitMQ."""

import asyncio
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from .conftest import pipeline_json
from .harness import SHARED
from .test_pipeline_end_to_end import _first_message, _listen, wait_terminal

pytestmark = pytest.mark.e2e
PEOPLE = SHARED / "data" / "coco-sample" / "000000000885.jpg"
# A typical CBSD68 picture (heavily textured ones such as 101085 gain about 7.5 dB, the mean is 10.7 dB).
CLEAN = SHARED / "data" / "cbsd68" / "108005.png"


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    error = np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / error))


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


def test_denoise_then_png_gains_at_least_8_db_on_a_noisy_cbsd68_image(vision_stack, tenant_key):
    clean = np.asarray(Image.open(CLEAN).convert("RGB"))
    noise = np.random.default_rng(0).normal(0, 25, clean.shape)
    noisy = np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "PNG")
    pipeline = [{"op": "denoise"}, {"op": "convert", "params": {"format": "png"}}]
    with httpx.Client(base_url=vision_stack.gateway_url, headers={"X-API-Key": tenant_key}, timeout=60) as client:
        job_id = client.post(
            "/v1/jobs", files={"file": ("noisy.png", buffer.getvalue())}, data={"pipeline": pipeline_json(pipeline)}
        ).json()["job_id"]
        job = wait_terminal(client, job_id, seconds=180)
        assert job["state"] == "succeeded", job
        [output] = job["outputs"]
        cleaned = np.asarray(Image.open(io.BytesIO(client.get(output["url"]).content)).convert("RGB"))
    gain = psnr(cleaned, clean) - psnr(noisy, clean)
    assert gain >= 8.0, f"denoising gained only {gain:.2f} dB"
    denoise_step = job["steps"][0]
    assert denoise_step["result"]["model_id"] == "dncnn_color_blind"
    assert len(denoise_step["result"]["weights_sha256"]) == 64


def test_denoise_then_detect_runs_as_a_chain(vision_stack, tenant_key):
    pipeline = [{"op": "denoise"}, {"op": "detect"}]
    with httpx.Client(base_url=vision_stack.gateway_url, headers={"X-API-Key": tenant_key}, timeout=60) as client:
        job_id = client.post(
            "/v1/jobs", files={"file": (PEOPLE.name, PEOPLE.read_bytes())}, data={"pipeline": pipeline_json(pipeline)}
        ).json()["job_id"]
        job = wait_terminal(client, job_id, seconds=180)
    assert job["state"] == "succeeded", job
    assert [step["op"] for step in job["steps"]] == ["denoise", "detect"]
    assert job["steps"][1]["result"]["counts"]["person"] >= 1
