"""URL import, batches, cancellation and retry through the whole stack, with images served on loopback."""

import json
import re
import time

import httpx
import pytest

from pixtools_contracts import JOB_TERMINAL

from .conftest import read_sse
from .test_pipeline_end_to_end import verify_signature, wait_terminal

pytestmark = pytest.mark.e2e

SMALL_PNG = [{"op": "resize", "params": {"width": 64}}, {"op": "convert", "params": {"format": "png"}}]


def wait_batch(client: httpx.Client, batch_id: str, seconds: float = 90, finished: bool = True) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = client.get(f"/v1/batches/{batch_id}?limit=500").json()
        if batch["state"] in JOB_TERMINAL and (batch["finished_at"] is not None or not finished):
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} not terminal in {seconds}s: {batch['state']} {batch['totals']}")


def batch_webhooks(received) -> list[dict]:
    payloads = [json.loads(body) for _, body in received.calls]
    return [payload for payload in payloads if payload.get("type") == "batch.finished.v1"]


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_url_job_is_fetched_processed_and_a_bad_url_fails_with_its_reason(stack, tenant_key, image_server):
    headers = {"Authorization": f"Bearer {tenant_key}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        submit = lambda url: client.post("/v1/jobs", json={"source_url": url, "pipeline": SMALL_PNG})  # noqa: E731
        good = submit(image_server.url("/img/cat.jpg")).json()["job_id"]
        cases = {
            "fetch.http_4xx": submit(image_server.url("/missing/dog.jpg")).json()["job_id"],
            "fetch.not_an_image": submit(image_server.url("/page.html")).json()["job_id"],
            # Link-local metadata address: blocked before any connection (only 127.0.0.0/8 is allowlisted here).
            "fetch.blocked": submit("http://169.254.169.254/latest/meta-data").json()["job_id"],
        }
        job = wait_terminal(client, good)
        assert job["state"] == "succeeded", job
        assert job["input"]["content_type"] == "image/jpeg"
        assert (job["input"]["width"], job["input"]["height"]) == (320, 240)
        assert [output["content_type"] for output in job["outputs"]] == ["image/png"]
        assert image_server.hits["/img/cat.jpg"] == 1
        for code, job_id in cases.items():
            failed = wait_terminal(client, job_id)
            assert failed["state"] == "failed", failed
            assert failed["error"]["code"] == code, failed
            assert {step["state"] for step in failed["steps"]} == {"skipped"}
        assert image_server.hits["/missing/dog.jpg"] == 1, "a 4xx is permanent: no second attempt"


def test_url_batch_runs_to_one_webhook_and_retry_reruns_only_failed_items(
    stack, tenant_key, image_server, webhook_receiver
):
    url, received = webhook_receiver
    items = [{"url": image_server.url(f"/img/{index}.jpg"), "id": f"photo-{index}"} for index in range(6)]
    items.append({"url": image_server.url("/img/0.jpg"), "id": "again"})  # duplicate of the first
    items.append({"url": image_server.url("/flaky/late.jpg"), "id": "late"})  # 404 until the test fixes it
    headers = {"Authorization": f"Bearer {tenant_key}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        secret = client.get("/v1/webhooks/secret").json()["secret"]
        response = client.post("/v1/batches", json={"items": items, "pipeline": SMALL_PNG, "webhook_url": url})
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert (accepted["items"], accepted["jobs"]) == (8, 7)
        assert [duplicate["id"] for duplicate in accepted["duplicates"]] == ["again"]

        batch = wait_batch(client, accepted["batch_id"])
        assert batch["state"] == "partially_failed", batch
        assert batch["totals"] | {"total": 7} == {
            "queued": 0,
            "running": 0,
            "succeeded": 6,
            "partially_failed": 0,
            "failed": 1,
            "cancelled": 0,
            "total": 7,
        }
        assert batch["progress"]["fraction"] == 1
        by_id = {item["id"]: item for item in batch["items"]}
        assert by_id["late"]["error"]["code"] == "fetch.http_4xx"
        assert all(len(by_id[f"photo-{index}"]["outputs"]) == 1 for index in range(6))
        download = client.get(by_id["photo-3"]["outputs"][0]["url"])
        assert download.status_code == 200
        assert download.content[:8] == b"\x89PNG\r\n\x1a\n"

        assert received.event.wait(30), "no batch webhook"
        time.sleep(1.0)  # a second (wrong) webhook would have been sent by now
        hooks = batch_webhooks(received)
        assert len(hooks) == 1, hooks
        assert len(received.calls) == 1, "children of a batch send no webhooks of their own"
        assert verify_signature(secret, *received.calls[0])
        assert json.dumps(hooks[0]).count(accepted["batch_id"]) >= 1

        image_server.fixed.add("/flaky/late.jpg")
        retried = client.post(f"/v1/batches/{accepted['batch_id']}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["jobs_changed"] == 1
        batch = wait_batch(client, accepted["batch_id"])
        assert batch["state"] == "succeeded", batch
        assert image_server.hits["/img/1.jpg"] == 1, "items that succeeded are not fetched again"
        assert image_server.hits["/flaky/late.jpg"] == 2
        deadline = time.monotonic() + 30
        while len(batch_webhooks(received)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [hook_state(hook) for hook in batch_webhooks(received)] == ["partially_failed", "succeeded"]


def hook_state(payload: dict) -> str:
    data = payload.get("data", payload)
    return data["state"]


def test_cancelling_a_batch_midway_skips_queued_work_and_ignores_late_results(stack, tenant_key, image_server):
    image_server.delay_s = 0.2  # each fetch is slow, so most of the batch is still queued when it is cancelled
    items = [{"url": image_server.url(f"/img/slow-{index}.jpg")} for index in range(80)]
    headers = {"Authorization": f"Bearer {tenant_key}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        batch_id = client.post("/v1/batches", json={"items": items, "pipeline": SMALL_PNG}).json()["batch_id"]
        deadline = time.monotonic() + 60
        while len(image_server.hits) < 4:
            assert time.monotonic() < deadline, "the batch did not start"
            time.sleep(0.02)
        cancelled = client.delete(f"/v1/batches/{batch_id}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled"
        assert cancelled.json()["jobs_changed"] > 60
        again = client.delete(f"/v1/batches/{batch_id}")
        assert (again.status_code, again.json()["jobs_changed"]) == (200, 0)

        batch = wait_batch(client, batch_id)
        assert batch["state"] == "cancelled"
        totals = batch["totals"]
        assert totals["cancelled"] == cancelled.json()["jobs_changed"]
        assert totals["succeeded"] + totals["cancelled"] == 80
        time.sleep(2.0)  # let anything still in flight arrive: late results must change nothing
        after = client.get(f"/v1/batches/{batch_id}").json()["totals"]
        assert after == totals
        fetched = sum(1 for path in image_server.hits if path.startswith("/img/slow-"))
        assert fetched < 20, f"queued fetches should have been skipped, {fetched} of 80 were fetched"
        metrics = httpx.get(stack.ready_url("ingest").replace("/readyz", "/metrics")).text
        assert metric(metrics, "pixtools_steps_skipped_total", reason="cancelled") >= 80 - 20
        cancelled_job = next(item for item in batch["items"] if item["state"] == "cancelled")
        view = client.get(f"/v1/jobs/{cancelled_job['job_id']}").json()
        assert view["error"]["code"] == "cancelled"


def test_cancelling_a_running_job_discards_its_late_results(stack, tenant_key, image_server):
    image_server.delay_s = 1.0  # the fetch is in flight when the cancel arrives
    headers = {"Authorization": f"Bearer {tenant_key}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30) as client:
        job_id = client.post(
            "/v1/jobs", json={"source_url": image_server.url("/img/running.jpg"), "pipeline": SMALL_PNG}
        ).json()["job_id"]
        deadline = time.monotonic() + 10
        while "/img/running.jpg" not in image_server.hits:
            assert time.monotonic() < deadline, "the fetch never started"
            time.sleep(0.02)
        assert client.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
        time.sleep(2.5)  # the fetch finishes and its outcome arrives late
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] == "cancelled"
        assert job["outputs"] == []
        assert {step["state"] for step in job["steps"]} == {"skipped"}
        assert re.fullmatch(r"cancelled.*", job["error"]["code"])


def test_batch_progress_streams_as_server_sent_events_until_the_batch_ends(stack, tenant_key, image_server):
    items = [{"url": image_server.url(f"/img/sse-{index}.jpg")} for index in range(5)]
    items.append({"url": image_server.url("/missing/sse.jpg")})
    headers = {"Authorization": f"Bearer {tenant_key}"}
    with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=60) as client:
        batch_id = client.post("/v1/batches", json={"items": items, "pipeline": SMALL_PNG}).json()["batch_id"]
        events = read_sse(client, f"/v1/batches/{batch_id}/events")
    names = [name for name, _ in events]
    assert names[-1] == "batch", names
    assert set(names[:-1]) == {"progress"}, names
    finished = [data["progress"]["finished"] for name, data in events if name == "progress"]
    assert finished == sorted(finished), "progress only moves forward"
    final = events[-1][1]
    assert final["state"] == "partially_failed"
    assert (final["totals"]["succeeded"], final["totals"]["failed"], final["progress"]["fraction"]) == (5, 1, 1.0)
