"""URL jobs, cancellation and retry through the API, over real Postgres, RabbitMQ and storage.

No workers run here (the relay is off too): these tests check what the gateway commits. The whole stack
runs them in tests/e2e.
"""

import json
import uuid

import pytest
from sqlalchemy import func, select, update

from pixtools_db import Batch, Job, Output, Step

from ..conftest import EXAMPLE_PIPELINE, jpeg
from .job_control_support import RESIZE_THEN_PNG, jobs_of, outbox_events, problem, submit_url_batch

pytestmark = pytest.mark.integration


async def test_url_job_is_accepted_with_a_fetch_command_and_no_input_yet(api, tenant_key, db):
    response = await api.client.post(
        "/v1/jobs",
        json={"source_url": "https://images.example.com/cat.jpg", "pipeline": RESIZE_THEN_PNG},
        headers=api.as_tenant(tenant_key),
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    view = (await api.client.get(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))).json()
    assert view["input"] is None
    assert view["source_url"] == "https://images.example.com/cat.jpg"
    assert [step["state"] for step in view["steps"]] == ["pending", "pending"]
    events = await outbox_events(db, [job_id])
    assert [event.type for event in events] == ["source.requested.v1"]
    assert events[0].routing_key() == "source.requested.v1.ingest"
    assert [step.id for step in events[0].remaining] == ["0", "1"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"source_url": "ftp://example.com/a.jpg"}, "http or https"),
        ({"source_url": "https://"}, "no host"),
        ({"source_url": "https://user:pw@example.com/a.jpg"}, "credentials"),
        ({"source_url": 42}, "non-empty URL"),
        ({"pipeline": RESIZE_THEN_PNG}, "non-empty URL"),
        ({"source_url": "https://example.com/a.jpg"}, "'pipeline' field is missing"),
    ],
)
async def test_bad_url_job_requests_are_422_problems(api, tenant_key, body, fragment):
    if "source_url" in body and "pipeline" not in body and fragment != "'pipeline' field is missing":
        body = {**body, "pipeline": RESIZE_THEN_PNG}
    response = await api.client.post("/v1/jobs", json=body, headers=api.as_tenant(tenant_key))
    assert fragment in problem(response, 422, "invalid-request")["detail"]


async def test_cancelling_a_batch_cancels_its_open_jobs_once(api, tenant_key, db):
    urls = [f"https://h.example/{index}.jpg" for index in range(4)]
    batch_id = (await submit_url_batch(api, tenant_key, urls)).json()["batch_id"]
    jobs = await jobs_of(db, batch_id)
    async with db.begin() as session:  # one job already finished before the cancel
        await session.execute(update(Job).where(Job.id == jobs[0].id).values(state="succeeded"))
    response = await api.client.delete(f"/v1/batches/{batch_id}", headers=api.as_tenant(tenant_key))
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["jobs_changed"]) == ("cancelled", 3)
    states = [job.state for job in await jobs_of(db, batch_id)]
    assert states == ["succeeded", "cancelled", "cancelled", "cancelled"]
    async with db() as session:
        steps = await session.scalars(select(Step).where(Step.job_id.in_([job.id for job in jobs[1:]])))
        assert {(step.state, step.error_code) for step in steps} == {("skipped", "cancelled")}
    cancels = [event for event in await outbox_events(db, [job.id for job in jobs]) if event.type == "job.cancelled.v1"]
    assert len(cancels) == 3
    again = await api.client.delete(f"/v1/batches/{batch_id}", headers=api.as_tenant(tenant_key))
    assert (again.status_code, again.json()["jobs_changed"]) == (200, 0)
    view = (await api.client.get(f"/v1/batches/{batch_id}", headers=api.as_tenant(tenant_key))).json()
    assert view["state"] == "cancelled"
    assert view["totals"]["cancelled"] == 3


async def test_cancelling_a_job_is_idempotent_and_a_finished_job_is_409(api, tenant_key, db):
    submitted = await api.client.post(
        "/v1/jobs",
        files={"file": ("a.jpg", jpeg())},
        data={"pipeline": EXAMPLE_PIPELINE},
        headers=api.as_tenant(tenant_key),
    )
    job_id = submitted.json()["job_id"]
    first = await api.client.delete(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))
    assert (first.status_code, first.json()["state"], first.json()["changed"]) == (200, "cancelled", True)
    second = await api.client.delete(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))
    assert (second.status_code, second.json()["changed"]) == (200, False)
    view = (await api.client.get(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))).json()
    assert view["error"] == {"code": "cancelled", "message": "cancelled by client"}
    assert {step["state"] for step in view["steps"]} == {"skipped"}
    async with db.begin() as session:
        other = Job(**{**_clone_columns(await session.get(Job, uuid.UUID(job_id))), "id": uuid.uuid4()})
        other.state, other.idempotency_key = "succeeded", None
        session.add(other)
    problem(await api.client.delete(f"/v1/jobs/{other.id}", headers=api.as_tenant(tenant_key)), 409, "state-conflict")


def _clone_columns(job: Job) -> dict:
    return {column.key: getattr(job, column.key) for column in Job.__table__.columns}


async def test_retry_reruns_only_the_failed_step_from_its_parents_output(api, tenant_key, db):
    submitted = await api.client.post(
        "/v1/jobs",
        files={"file": ("a.jpg", jpeg())},
        data={"pipeline": json.dumps(RESIZE_THEN_PNG)},
        headers=api.as_tenant(tenant_key),
    )
    job_id = uuid.UUID(submitted.json()["job_id"])
    problem(await api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.as_tenant(tenant_key)), 409, "state-conflict")
    resized_key = f"jobs/x/{job_id}/steps/0/image.jpg"
    async with db.begin() as session:  # what the aggregator records when step 0 worked and step 1 failed
        await session.execute(update(Step).where(Step.job_id == job_id, Step.step_id == "0").values(state="succeeded"))
        await session.execute(
            update(Step)
            .where(Step.job_id == job_id, Step.step_id == "1")
            .values(state="failed", error_code="image.corrupt", error_message="broken")
        )
        await session.execute(update(Job).where(Job.id == job_id).values(state="failed"))
        session.add(
            Output(
                job_id=job_id,
                step_id="0",
                op="resize",
                name="image",
                role="image",
                is_final=False,
                key=resized_key,
                content_type="image/jpeg",
                bytes=10,
                sha256="ab" * 32,
                width=32,
                height=24,
            )
        )
    response = await api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.as_tenant(tenant_key))
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "running"
    view = (await api.client.get(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))).json()
    assert [(step["id"], step["state"], step["error"]) for step in view["steps"]] == [
        ("0", "succeeded", None),
        ("1", "pending", None),
    ]
    retried = [event for event in await outbox_events(db, [job_id]) if event.type == "step.requested.v1"][-1]
    assert retried.step.id == "1"  # type: ignore[attr-defined]
    assert retried.input.key == resized_key  # type: ignore[attr-defined]
    assert retried.lane == "interactive"  # type: ignore[attr-defined]


async def test_retry_of_a_failed_fetch_fetches_again(api, tenant_key, db):
    submitted = await api.client.post(
        "/v1/jobs",
        json={"source_url": "https://i.example/gone.jpg", "pipeline": RESIZE_THEN_PNG},
        headers=api.as_tenant(tenant_key),
    )
    job_id = uuid.UUID(submitted.json()["job_id"])
    async with db.begin() as session:  # what the aggregator records for source.failed.v1
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="failed", error_code="fetch.http_status", error_message="404")
        )
        await session.execute(
            update(Step).where(Step.job_id == job_id).values(state="skipped", error_code="source_failed")
        )
    response = await api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.as_tenant(tenant_key))
    assert response.status_code == 202, response.text
    view = (await api.client.get(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))).json()
    assert (view["state"], view["error"]) == ("accepted", None)
    assert {step["state"] for step in view["steps"]} == {"pending"}
    types = [event.type for event in await outbox_events(db, [job_id])]
    assert types == ["source.requested.v1", "source.requested.v1"]


async def test_retry_of_a_partially_failed_job_whose_source_never_arrived_fetches_again(api, tenant_key, db):
    """Steps can overtake their job's source.fetched: such a job ends partially failed with no stored original."""
    submitted = await api.client.post(
        "/v1/jobs",
        json={"source_url": "https://i.example/late.jpg", "pipeline": RESIZE_THEN_PNG},
        headers=api.as_tenant(tenant_key),
    )
    job_id = uuid.UUID(submitted.json()["job_id"])
    async with db.begin() as session:
        await session.execute(update(Step).where(Step.job_id == job_id, Step.step_id == "0").values(state="succeeded"))
        await session.execute(
            update(Step).where(Step.job_id == job_id, Step.step_id == "1").values(state="failed", error_code="x")
        )
        await session.execute(update(Job).where(Job.id == job_id).values(state="partially_failed"))
    response = await api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.as_tenant(tenant_key))
    assert response.status_code == 202, response.text
    view = (await api.client.get(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))).json()
    assert view["state"] == "accepted"
    assert [step["state"] for step in view["steps"]] == ["succeeded", "pending"]
    types = [event.type for event in await outbox_events(db, [job_id])]
    assert types == ["source.requested.v1", "source.requested.v1"]


async def test_batch_retry_retries_only_failed_children_and_reopens_the_batch(api, tenant_key, db):
    urls = [f"https://j.example/{index}.jpg" for index in range(3)]
    batch_id = uuid.UUID((await submit_url_batch(api, tenant_key, urls)).json()["batch_id"])
    problem(
        await api.client.post(f"/v1/batches/{batch_id}/retry", headers=api.as_tenant(tenant_key)), 409, "state-conflict"
    )
    jobs = await jobs_of(db, batch_id)
    async with db.begin() as session:
        await session.execute(update(Job).where(Job.id == jobs[0].id).values(state="succeeded"))
        await session.execute(
            update(Job).where(Job.id == jobs[1].id).values(state="failed", error_code="fetch.http_status")
        )
        await session.execute(update(Step).where(Step.job_id == jobs[1].id).values(state="skipped"))
        await session.execute(
            update(Job).where(Job.id == jobs[2].id).values(state="failed", error_code="fetch.timeout")
        )
        await session.execute(update(Step).where(Step.job_id == jobs[2].id).values(state="skipped"))
        await session.execute(
            update(Batch).where(Batch.id == batch_id).values(state="partially_failed", finished_at=func.now())
        )
    response = await api.client.post(f"/v1/batches/{batch_id}/retry", headers=api.as_tenant(tenant_key))
    assert response.status_code == 202, response.text
    assert (response.json()["state"], response.json()["jobs_changed"]) == ("running", 2)
    assert [job.state for job in await jobs_of(db, batch_id)] == ["succeeded", "accepted", "accepted"]
    async with db() as session:
        batch = await session.get(Batch, batch_id)
        assert (batch.state, batch.finished_at) == ("running", None)
    fetches = [
        event for event in await outbox_events(db, [job.id for job in jobs]) if event.type == "source.requested.v1"
    ]
    assert len(fetches) == 3 + 2
    assert {event.lane for event in fetches} == {"bulk"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"source_url": "https://a.example/x.jpg", "pipeline": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
        ('{"source_url": "https://a.example/\\u0000.jpg", "pipeline": []}', "control characters"),
        ('{"source_url": "https://b\\u00fccher.example/x.jpg", "pipeline": []}', "ASCII"),
    ],
)
async def test_hostile_json_bodies_are_422_problems_not_errors(api, tenant_key, content, fragment):
    response = await api.client.post(
        "/v1/jobs", content=content, headers={**api.as_tenant(tenant_key), "Content-Type": "application/json"}
    )
    assert fragment in problem(response, 422, "invalid-request")["detail"]
