"""`Prefer: wait=N` through the real stack: a quick job answers 200 with the finished job in one round trip."""

import json

import httpx
import pytest

from .test_pipeline_end_to_end import photo

pytestmark = pytest.mark.e2e


def without_link_expiry(job: dict) -> dict:
    """The job with each output link's query dropped: a link signed a moment later may expire a minute later."""
    outputs = [{**output, "url": output["url"].partition("?")[0]} for output in job["outputs"]]
    return {**job, "outputs": outputs}


def test_a_quick_job_submitted_with_prefer_wait_answers_200_with_the_finished_job(stack, tenant_key):
    pipeline = json.dumps([{"op": "resize", "params": {"width": 64}}, {"op": "convert", "params": {"format": "png"}}])
    with httpx.Client(base_url=stack.gateway_url, headers={"X-API-Key": tenant_key}, timeout=60) as client:
        response = client.post(
            "/v1/jobs",
            files={"file": ("p.jpg", photo())},
            data={"pipeline": pipeline},
            headers={"Prefer": "wait=30"},
        )
        assert response.status_code == 200, response.text
        assert response.headers["preference-applied"] == "wait=30"
        job = response.json()
        assert job["state"] == "succeeded"
        read = client.get(f"/v1/jobs/{job['job_id']}").json()
        assert without_link_expiry(job) == without_link_expiry(read), "the document GET /v1/jobs/{id} answers"
        [png] = [output for output in job["outputs"] if output["content_type"] == "image/png"]
        opened = httpx.get(png["url"], timeout=30)  # no key: the link is signed
        assert opened.status_code == 200
        assert opened.content.startswith(b"\x89PNG")
