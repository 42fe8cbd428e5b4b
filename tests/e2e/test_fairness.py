"""A 1000-URL batch from one tenant must not starve another tenant's single job (issue 5's fairness rule).

Batch items travel in each stage's bulk lane (own queue, small prefetch, CPU pool serves interactive work
first), so a single job waits behind at most a couple of bulk messages per stage. bench/fairness measures
the same with more repetitions and against a flood of 1000 single jobs (no lane) as the baseline.
"""

import statistics
import time

import httpx
import pytest

from pixtools_contracts import JOB_TERMINAL

from .test_pipeline_end_to_end import photo

pytestmark = pytest.mark.e2e

PIPELINE = '[{"op": "resize", "params": {"width": 320}}, {"op": "convert", "params": {"format": "webp"}}]'
BATCH_PIPELINE = [{"op": "resize", "params": {"width": 160}}, {"op": "convert", "params": {"format": "png"}}]
ALLOWED_SLOWDOWN = 5.0


def single_job_latency(client: httpx.Client, image: bytes) -> float:
    started = time.perf_counter()
    job_id = client.post("/v1/jobs", files={"file": ("p.jpg", image)}, data={"pipeline": PIPELINE}).json()["job_id"]
    while True:
        state = client.get(f"/v1/jobs/{job_id}").json()["state"]
        if state in JOB_TERMINAL:
            assert state == "succeeded"
            return time.perf_counter() - started
        time.sleep(0.005)


def test_single_job_behind_a_running_1000_url_batch_finishes_within_5x_its_unloaded_latency(
    stack, tenant_key, other_tenant_key, image_server
):
    image = photo()
    bulk = httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {tenant_key}"}, timeout=60)
    single = httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {other_tenant_key}"})
    with bulk, single:
        single_job_latency(single, image)  # warm every connection and code path once
        unloaded = statistics.median(single_job_latency(single, image) for _ in range(5))

        items = [{"url": image_server.url(f"/img/bulk-{index}.jpg")} for index in range(1000)]
        response = bulk.post("/v1/batches", json={"items": items, "pipeline": BATCH_PIPELINE})
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        deadline = time.monotonic() + 60
        while len(image_server.hits) < 50:  # the batch is well under way
            assert time.monotonic() < deadline, "the batch did not start"
            time.sleep(0.05)

        loaded = statistics.median(single_job_latency(single, image) for _ in range(5))
        totals = bulk.get(f"/v1/batches/{batch_id}").json()["totals"]
        bulk.delete(f"/v1/batches/{batch_id}")

    assert totals["queued"] + totals["running"] > 500, f"the batch should still be running: {totals}"
    ratio = loaded / unloaded
    print(f"unloaded {unloaded * 1000:.0f} ms, behind the batch {loaded * 1000:.0f} ms, ratio {ratio:.2f}")
    assert ratio <= ALLOWED_SLOWDOWN, (
        f"single job slowed {ratio:.1f}x behind the batch ({unloaded=:.3f}s {loaded=:.3f}s)"
    )
