"""Killing a process at a bad moment loses no job."""

import asyncio
import io
import time

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from pixtools_db import Outbox, create_engine, session_factory

from .conftest import pipeline_json
from .test_pipeline_end_to_end import photo, wait_terminal

pytestmark = pytest.mark.e2e


def large_photo() -> bytes:
    # Big enough that an AVIF encode takes seconds on these cores, so the worker can be killed mid-step.
    image = Image.effect_noise((3000, 2000), 60).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def test_killed_ingest_worker_mid_step_loses_no_job(stack, tenant_key):
    headers = {"Authorization": f"Bearer {tenant_key}"}
    pipeline = [{"op": "convert", "params": {"format": "avif", "quality": 90}}]
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        job_id = client.post(
            "/v1/jobs", files={"file": ("big.png", large_photo())}, data={"pipeline": pipeline_json(pipeline)}
        ).json()["job_id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["steps"][0]["state"] != "running":
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.02)
        stack.kill("ingest")
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "running"
        stack.start("ingest")
        job = wait_terminal(client, job_id, seconds=120)
    assert job["state"] == "succeeded", job
    assert job["outputs"][0]["content_type"] == "image/avif"


def _unpublished(database_url: str, job_id: str) -> int:
    async def count() -> int:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with session_factory(engine)() as session:
                query = (
                    select(func.count())
                    .select_from(Outbox)
                    .where(Outbox.published_at.is_(None), Outbox.body.contains(job_id.encode()))
                )
                return int(await session.scalar(query) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _unpublished_after(database_url: str, job_id: str, *, seconds: float) -> int:
    """The job's unpublished outbox rows, polled until none is left or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while (left := _unpublished(database_url, job_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_killed_gateway_right_after_202_loses_no_job(stack, tenant_key, database_url):
    stack.stop("gateway")
    # This gateway commits jobs but never relays them, so the job can only start through the outbox.
    stack.start("gateway", PIXTOOLS_RELAY_ENABLED="false")
    headers = {"Authorization": f"Bearer {tenant_key}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        response = client.post(
            "/v1/jobs", files={"file": ("p.jpg", photo())}, data={"pipeline": pipeline_json([{"op": "metadata"}])}
        )
        assert response.status_code == 202
        job_id = response.json()["job_id"]
        stack.kill("gateway")
        assert _unpublished(database_url, job_id) == 2
        stack.start("gateway")
        job = wait_terminal(client, job_id)
    assert job["state"] == "succeeded"
    # Every row of the job ends published and deleted: the two the killed gateway left, and the aggregator's
    # terminal event, whose row its relay deletes shortly after publishing it (deletes are gathered into one
    # statement), so it may still be there at the moment the job reads as succeeded.
    assert _unpublished_after(database_url, job_id, seconds=10) == 0
