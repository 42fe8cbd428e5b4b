"""`Prefer: wait=N` on submissions: the finished job within N seconds, else the usual 202.

No stage runs here: a task plays the aggregator, recording the job as finished and notifying as it does, so the
wait is woken by the notification the gateway listens to.
"""

import asyncio
import hashlib
import secrets
import time

import pytest
from sqlalchemy import select, text, update

from pixtools_db import Job, Step

from ..conftest import jpeg

pytestmark = pytest.mark.integration

PIPELINE = '[{"op": "metadata"}]'


@pytest.fixture
def gateway_settings(gateway_settings):
    return gateway_settings.model_copy(update={"prefer_wait_max_s": 5})


def without_link_expiry(job: dict) -> dict:
    """The job with each output link's query dropped: a link signed a moment later may expire a minute later."""
    outputs = [{**output, "url": output["url"].partition("?")[0]} for output in job["outputs"]]
    return {**job, "outputs": outputs}


async def _submit(api, key, prefer: str | None, image: bytes | None = None):
    headers = {**api.as_tenant(key), **({"Prefer": prefer} if prefer is not None else {})}
    return await api.client.post(
        "/v1/jobs", files={"file": ("a.jpg", image or jpeg())}, data={"pipeline": PIPELINE}, headers=headers
    )


async def _finish_when_submitted(db, sha256: str, after_s: float) -> None:
    """Record the job with this input as succeeded, `after_s` after it appears, and notify as the aggregator does."""
    while True:
        async with db() as session:
            job_id = await session.scalar(select(Job.id).where(Job.input_sha256 == sha256))
        if job_id is not None:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(after_s)
    async with db.begin() as session:
        await session.execute(update(Step).where(Step.job_id == job_id).values(state="succeeded", result={"w": 1}))
        await session.execute(update(Job).where(Job.id == job_id).values(state="succeeded", finished_at=text("now()")))
        await session.execute(text("SELECT pg_notify('pixtools_jobs', :id)"), {"id": str(job_id)})


async def test_a_job_finished_within_the_wait_answers_200_with_the_whole_job(api, tenant_key, db):
    image = jpeg(colour=tuple(secrets.token_bytes(3)), width=71)  # an input no other job has
    finisher = asyncio.create_task(_finish_when_submitted(db, hashlib.sha256(image).hexdigest(), after_s=0.3))
    started = time.monotonic()
    response = await _submit(api, tenant_key, "wait=4", image)
    elapsed = time.monotonic() - started
    await finisher
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=4"
    assert response.headers["vary"] == "Prefer"
    job = response.json()
    assert job["state"] == "succeeded"
    assert response.headers["content-location"].endswith(f"/v1/jobs/{job['job_id']}")
    read = await api.client.get(f"/v1/jobs/{job['job_id']}", headers=api.as_tenant(tenant_key))
    assert without_link_expiry(job) == without_link_expiry(read.json()), "the document GET /v1/jobs/{id} answers"
    assert elapsed < 4, "woken by the notification, not by the end of the wait"


async def test_a_wait_that_runs_out_answers_the_usual_202(api, tenant_key):
    started = time.monotonic()
    response = await _submit(api, tenant_key, "wait=1")
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "accepted"
    assert "preference-applied" not in response.headers
    assert 1 <= elapsed < 4


async def test_a_longer_wait_is_cut_to_the_configured_cap(api, tenant_key):
    started = time.monotonic()
    response = await _submit(api, tenant_key, "respond-async, wait=600")
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert 5 <= elapsed < 9, f"waited {elapsed:.1f} s with a 5 s cap"


@pytest.mark.parametrize("prefer", ["wait=soon", "wait=-3", "wait", "wait=0", "return=minimal", "wait=1.5"])
async def test_malformed_or_zero_waits_are_ignored(api, tenant_key, prefer):
    started = time.monotonic()
    response = await _submit(api, tenant_key, prefer)
    assert response.status_code == 202
    assert "preference-applied" not in response.headers
    assert time.monotonic() - started < 1
