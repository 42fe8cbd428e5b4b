"""URL jobs, batches, cancellation and retry through the API, over real Postgres, RabbitMQ and storage.

No workers run here (the relay is off too): these tests check what the gateway commits. The whole stack
runs them in tests/e2e.
"""

import json
import uuid

import pytest
from sqlalchemy import func, or_, select, update

from pixtools_contracts import parse_event
from pixtools_db import Batch, Job, Outbox, Output, Step, create_engine, session_factory

from ..conftest import EXAMPLE_PIPELINE, jpeg

pytestmark = pytest.mark.integration

RESIZE_THEN_PNG = [{"op": "resize", "params": {"width": 32}}, {"op": "convert", "params": {"format": "png"}}]


@pytest.fixture
async def db(database_url):
    engine = create_engine(database_url, pool_size=2)
    yield session_factory(engine)
    await engine.dispose()


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/" + slug)
    return body


async def _outbox(db, job_ids) -> list:
    """The outbox events of these jobs, in the order they were staged."""
    wanted = [Outbox.body.contains(f'"job_id":"{job_id}"'.encode()) for job_id in job_ids]
    async with db() as session:
        rows = await session.scalars(select(Outbox).where(or_(*wanted)).order_by(Outbox.id))
        return [parse_event(row.body) for row in rows]


async def _jobs_of(db, batch_id) -> list[Job]:
    async with db() as session:
        return list(await session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_position)))


async def _batch_json(api, key, urls, pipeline=None, **extra):
    items = [{"url": url, "id": f"item-{index}"} for index, url in enumerate(urls)]
    return await api.client.post(
        "/v1/batches",
        json={"items": items, "pipeline": pipeline or RESIZE_THEN_PNG, **extra},
        headers=api.as_tenant(key),
    )


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
    events = await _outbox(db, [job_id])
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
    assert fragment in _problem(response, 422, "invalid-request")["detail"]


async def test_json_batch_dedupes_urls_and_creates_every_job_in_the_bulk_lane(api, tenant_key, db):
    urls = ["https://a.example/1.jpg", "https://a.example/2.jpg", "https://a.example/1.jpg"]
    response = await _batch_json(api, tenant_key, urls)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["items"], body["jobs"]) == (3, 2)
    assert body["duplicates"] == [{"index": 2, "id": "item-2", "url": urls[0], "filename": None, "duplicate_of": 0}]
    jobs = await _jobs_of(db, body["batch_id"])
    assert [(job.source_url, job.item_id, job.batch_position) for job in jobs] == [
        (urls[0], "item-0", 0),
        (urls[1], "item-1", 1),
    ]
    assert all(job.webhook_url is None for job in jobs)  # the batch has the one webhook
    events = await _outbox(db, [job.id for job in jobs])
    assert sorted(event.routing_key() for event in events) == ["source.requested.v1.ingest.bulk"] * 2
    view = (await api.client.get(f"/v1/batches/{body['batch_id']}", headers=api.as_tenant(tenant_key))).json()
    assert view["state"] == "accepted"
    assert view["totals"] == {
        "queued": 2,
        "running": 0,
        "succeeded": 0,
        "partially_failed": 0,
        "failed": 0,
        "cancelled": 0,
        "total": 2,
    }
    assert view["progress"] == {"finished": 0, "total": 2, "fraction": 0.0}
    assert [(item["id"], item["url"], item["state"]) for item in view["items"]] == [
        ("item-0", urls[0], "accepted"),
        ("item-1", urls[1], "accepted"),
    ]


async def test_csv_batch_reads_url_and_id_columns(api, tenant_key, db):
    csv_text = "id,url\nfirst,https://b.example/x.png\nsecond,https://b.example/y.png\n,https://b.example/x.png\n"
    response = await api.client.post(
        "/v1/batches",
        files={"file": ("urls.csv", csv_text.encode())},
        data={"pipeline": json.dumps(RESIZE_THEN_PNG)},
        headers=api.as_tenant(tenant_key),
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["jobs"] == 2
    assert body["duplicates"][0]["duplicate_of"] == 0
    jobs = await _jobs_of(db, body["batch_id"])
    assert [(job.item_id, job.source_url) for job in jobs] == [
        ("first", "https://b.example/x.png"),
        ("second", "https://b.example/y.png"),
    ]
    async with db() as session:
        assert (await session.get(Batch, uuid.UUID(body["batch_id"]))).source == "csv"


async def test_csv_without_a_url_column_is_refused(api, tenant_key):
    response = await api.client.post(
        "/v1/batches",
        files={"file": ("urls.csv", b"link\nhttps://x.example/a.jpg\n")},
        data={"pipeline": json.dumps(RESIZE_THEN_PNG)},
        headers=api.as_tenant(tenant_key),
    )
    assert "'url' column" in _problem(response, 422, "invalid-request")["detail"]


async def test_file_batch_stores_each_original_and_requests_its_first_step(api, tenant_key, db):
    response = await api.client.post(
        "/v1/batches",
        files=[
            ("files", ("red.jpg", jpeg(colour=(250, 0, 0)))),
            ("files", ("blue.jpg", jpeg(colour=(0, 0, 250)))),
            ("files", ("red-again.jpg", jpeg(colour=(250, 0, 0)))),
        ],
        data={"pipeline": EXAMPLE_PIPELINE},
        headers=api.as_tenant(tenant_key),
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["jobs"] == 2
    assert body["duplicates"] == [{"index": 2, "id": None, "url": None, "filename": "red-again.jpg", "duplicate_of": 0}]
    jobs = await _jobs_of(db, body["batch_id"])
    assert [job.source_name for job in jobs] == ["red.jpg", "blue.jpg"]
    for job in jobs:
        assert (api.blob_dir / job.input_key).read_bytes()[:2] == b"\xff\xd8"
    events = await _outbox(db, [job.id for job in jobs])
    requests = [event for event in events if event.type == "step.requested.v1"]
    assert sorted(event.routing_key() for event in requests) == ["step.requested.v1.ingest.bulk"] * 2
    assert sum(event.type == "job.submitted.v1" for event in events) == 2


async def test_a_file_batch_with_a_non_image_is_refused_whole(api, tenant_key, db):
    async with db() as session:
        before = await session.scalar(select(func.count()).select_from(Batch))
    response = await api.client.post(
        "/v1/batches",
        files=[("files", ("ok.jpg", jpeg())), ("files", ("page.html", b"<html></html>"))],
        data={"pipeline": EXAMPLE_PIPELINE},
        headers=api.as_tenant(tenant_key),
    )
    assert "file 1 (page.html)" in _problem(response, 415, "unsupported-media-type")["detail"]
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Batch)) == before


async def test_1001_items_are_refused_with_413_and_nothing_is_created(api, tenant_key, db):
    async with db() as session:
        before = await session.scalar(select(func.count()).select_from(Job))
    urls = [f"https://c.example/{index}.jpg" for index in range(1001)]
    _problem(await _batch_json(api, tenant_key, urls), 413, "batch-too-large")
    csv_text = "url\n" + "\n".join(urls) + "\n"
    response = await api.client.post(
        "/v1/batches",
        files={"file": ("urls.csv", csv_text.encode())},
        data={"pipeline": json.dumps(RESIZE_THEN_PNG)},
        headers=api.as_tenant(tenant_key),
    )
    _problem(response, 413, "batch-too-large")
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == before


async def test_1000_items_are_accepted_in_one_transaction(api, tenant_key, db):
    urls = [f"https://d.example/{index}.jpg" for index in range(1000)]
    response = await _batch_json(api, tenant_key, urls)
    assert response.status_code == 202, response.text
    assert response.json()["jobs"] == 1000
    view = (
        await api.client.get(f"/v1/batches/{response.json()['batch_id']}?offset=990", headers=api.as_tenant(tenant_key))
    ).json()
    assert view["totals"]["total"] == 1000
    assert [item["position"] for item in view["items"]] == list(range(990, 1000))
    assert view["next_offset"] is None


async def test_an_invalid_item_is_reported_by_position_and_nothing_is_created(api, tenant_key):
    response = await _batch_json(api, tenant_key, ["https://e.example/a.jpg", "file:///etc/passwd"])
    body = _problem(response, 422, "invalid-request")
    assert body["errors"] == [{"loc": ["items", 1, "url"], "msg": "'url' must use http or https, not 'file'"}]


async def test_items_page_with_offset_and_limit(api, tenant_key):
    urls = [f"https://f.example/{index}.jpg" for index in range(25)]
    batch_id = (await _batch_json(api, tenant_key, urls)).json()["batch_id"]
    pages = []
    offset: int | None = 0
    while offset is not None:
        page = (
            await api.client.get(f"/v1/batches/{batch_id}?offset={offset}&limit=10", headers=api.as_tenant(tenant_key))
        ).json()
        pages.append([item["url"] for item in page["items"]])
        offset = page["next_offset"]
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [url for page in pages for url in page] == urls
    too_big = await api.client.get(f"/v1/batches/{batch_id}?limit=501", headers=api.as_tenant(tenant_key))
    _problem(too_big, 422, "invalid-request")


async def test_another_tenants_batch_is_404(api, tenant_key, other_tenant_key):
    batch_id = (await _batch_json(api, tenant_key, ["https://g.example/a.jpg"])).json()["batch_id"]
    for call in (
        api.client.get(f"/v1/batches/{batch_id}", headers=api.as_tenant(other_tenant_key)),
        api.client.delete(f"/v1/batches/{batch_id}", headers=api.as_tenant(other_tenant_key)),
        api.client.post(f"/v1/batches/{batch_id}/retry", headers=api.as_tenant(other_tenant_key)),
        api.client.get(f"/v1/batches/{batch_id}/events", headers=api.as_tenant(other_tenant_key)),
    ):
        _problem(await call, 404, "not-found")


async def test_cancelling_a_batch_cancels_its_open_jobs_once(api, tenant_key, db):
    urls = [f"https://h.example/{index}.jpg" for index in range(4)]
    batch_id = (await _batch_json(api, tenant_key, urls)).json()["batch_id"]
    jobs = await _jobs_of(db, batch_id)
    async with db.begin() as session:  # one job already finished before the cancel
        await session.execute(update(Job).where(Job.id == jobs[0].id).values(state="succeeded"))
    response = await api.client.delete(f"/v1/batches/{batch_id}", headers=api.as_tenant(tenant_key))
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["jobs_changed"]) == ("cancelled", 3)
    states = [job.state for job in await _jobs_of(db, batch_id)]
    assert states == ["succeeded", "cancelled", "cancelled", "cancelled"]
    async with db() as session:
        steps = await session.scalars(select(Step).where(Step.job_id.in_([job.id for job in jobs[1:]])))
        assert {(step.state, step.error_code) for step in steps} == {("skipped", "cancelled")}
    cancels = [event for event in await _outbox(db, [job.id for job in jobs]) if event.type == "job.cancelled.v1"]
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
    _problem(await api.client.delete(f"/v1/jobs/{other.id}", headers=api.as_tenant(tenant_key)), 409, "state-conflict")


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
    _problem(
        await api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.as_tenant(tenant_key)), 409, "state-conflict"
    )
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
    retried = [event for event in await _outbox(db, [job_id]) if event.type == "step.requested.v1"][-1]
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
    types = [event.type for event in await _outbox(db, [job_id])]
    assert types == ["source.requested.v1", "source.requested.v1"]


async def test_batch_retry_retries_only_failed_children_and_reopens_the_batch(api, tenant_key, db):
    urls = [f"https://j.example/{index}.jpg" for index in range(3)]
    batch_id = uuid.UUID((await _batch_json(api, tenant_key, urls)).json()["batch_id"])
    _problem(
        await api.client.post(f"/v1/batches/{batch_id}/retry", headers=api.as_tenant(tenant_key)), 409, "state-conflict"
    )
    jobs = await _jobs_of(db, batch_id)
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
    assert [job.state for job in await _jobs_of(db, batch_id)] == ["succeeded", "accepted", "accepted"]
    async with db() as session:
        batch = await session.get(Batch, batch_id)
        assert (batch.state, batch.finished_at) == ("running", None)
    fetches = [event for event in await _outbox(db, [job.id for job in jobs]) if event.type == "source.requested.v1"]
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
    assert fragment in _problem(response, 422, "invalid-request")["detail"]


async def test_a_csv_with_a_monstrous_header_or_an_unstorable_id_is_a_422(api, tenant_key):
    for csv_text in (
        "url," + "x" * 200_000 + "\nhttps://a.example/1.jpg,1\n",
        "url,id\nhttps://a.example/1.jpg,a\x00b\n",
    ):
        response = await api.client.post(
            "/v1/batches",
            files={"file": ("urls.csv", csv_text.encode())},
            data={"pipeline": json.dumps(RESIZE_THEN_PNG)},
            headers=api.as_tenant(tenant_key),
        )
        _problem(response, 422, "invalid-request")


async def test_more_than_1000_files_is_a_413(api, tenant_key, gateway_settings):
    image = jpeg(8, 8)
    response = await api.client.post(
        "/v1/batches",
        files=[("files", (f"{index}.jpg", image)) for index in range(1001)],
        data={"pipeline": EXAMPLE_PIPELINE},
        headers=api.as_tenant(tenant_key),
    )
    _problem(response, 413, "batch-too-large")
