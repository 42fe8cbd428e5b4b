"""The HTTP contract through real processes: streams resume from Last-Event-ID, webhooks verify as Standard Webhooks."""

import json

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from .conftest import pipeline_json
from .test_pipeline_end_to_end import photo, wait_terminal

pytestmark = pytest.mark.e2e

TWO_STEPS = [{"op": "resize", "params": {"width": 64}}, {"op": "convert", "params": {"format": "png"}}]


def read_events(client: httpx.Client, path: str, *, count: int | None = None, last_event_id: str | None = None):
    """(event, id, data) of a stream: the first `count` events, or every event until the server ends the stream."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[tuple[str, str, dict]] = []
    with client.stream("GET", path, headers=headers) as stream:
        assert stream.status_code == 200
        fields: dict[str, str] = {}
        for line in stream.iter_lines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.strip()
            elif not line and "data" in fields:
                events.append((fields["event"], fields["id"], json.loads(fields["data"])))
                fields = {}
                if count is not None and len(events) == count:
                    break
    return events


def test_a_reconnecting_stream_resumes_without_missing_a_state_change(gateway_only, tenant_key):
    with httpx.Client(base_url=gateway_only.gateway_url, headers={"X-API-Key": tenant_key}, timeout=30) as client:
        body = {"source_url": "https://images.example.com/cat.jpg", "pipeline": TWO_STEPS}
        job_id = client.post("/v1/jobs", json=body).json()["job_id"]
        # The two 'step' events; the client goes away before the 'job' event.
        first = read_events(client, f"/v1/jobs/{job_id}/events", count=2)
        assert [(event, data["state"]) for event, _, data in first] == [("step", "pending"), ("step", "pending")]
        # Back before anything changed: the stream goes on from the event it had not sent.
        second = read_events(client, f"/v1/jobs/{job_id}/events", count=1, last_event_id=first[-1][1])
        assert [(event, data["state"]) for event, _, data in second] == [("job", "accepted")]
        assert client.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"

        resumed = read_events(client, f"/v1/jobs/{job_id}/events", last_event_id=second[-1][1])
        job = client.get(f"/v1/jobs/{job_id}").json()

    seen = [(event, data.get("id", job_id), data["state"]) for event, _, data in first + second + resumed]
    assert len(set(seen)) == len(seen), "a resumed stream repeats nothing the client had"
    assert {(step["id"], step["state"]) for step in job["steps"]} <= {(key, state) for _, key, state in seen}
    assert resumed[-1][0] == "job"
    assert resumed[-1][2]["state"] == "cancelled"
    # One timestamp format everywhere: the stream's is the REST answer's, RFC 3339 in UTC.
    assert resumed[-1][2]["finished_at"] == job["finished_at"]
    assert job["finished_at"].endswith("Z")
    assert all(event_id for _, event_id, _ in first + second + resumed)


def test_a_delivered_job_webhook_verifies_with_the_standard_webhooks_library(stack, tenant_key, webhook_receiver):
    url, received = webhook_receiver
    with httpx.Client(base_url=stack.gateway_url, headers={"X-API-Key": tenant_key}, timeout=30) as client:
        old = client.get("/v1/webhooks/secret").json()["secret"]
        new = client.post("/v1/webhooks/secret/rotate").json()["secret"]
        files = {"file": ("photo.jpg", photo(64, 48), "image/jpeg")}
        fields = {"pipeline": pipeline_json([{"op": "metadata"}]), "webhook_url": url}
        job_id = client.post("/v1/jobs", files=files, data=fields).json()["job_id"]
        wait_terminal(client, job_id)
    assert received.event.wait(30), "no webhook arrived"
    headers, body = received.calls[0]

    assert len(headers["webhook-signature"].split()) == 2, "one signature per secret during the rotation"
    for secret in (new, old):
        payload = Webhook(secret).verify(body, headers)
        assert payload["type"] == "job.completed.v1"
        assert payload["data"]["job_id"] == job_id
    assert payload["timestamp"].endswith("Z")
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace(job_id.encode(), b"0" * len(job_id)), headers)
