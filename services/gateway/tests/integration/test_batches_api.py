"""Batches through the API: JSON, CSV and file items, duplicates, the 1000-item cap, pages and isolation.

No workers run here (the relay is off too): these tests check what the gateway commits; tests/e2e runs batches
through the whole stack.
"""

import json
import uuid

import pytest
from sqlalchemy import func, select

from pixtools_db import Batch, Job

from ..conftest import EXAMPLE_PIPELINE, jpeg
from .job_control_support import RESIZE_THEN_PNG, jobs_of, outbox_events, problem, submit_url_batch

pytestmark = pytest.mark.integration


async def test_json_batch_dedupes_urls_and_creates_every_job_in_the_bulk_lane(api, tenant_key, db):
    urls = ["https://a.example/1.jpg", "https://a.example/2.jpg", "https://a.example/1.jpg"]
    response = await submit_url_batch(api, tenant_key, urls)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["items"], body["jobs"]) == (3, 2)
    assert body["duplicates"] == [{"index": 2, "id": "item-2", "url": urls[0], "filename": None, "duplicate_of": 0}]
    jobs = await jobs_of(db, body["batch_id"])
    assert [(job.source_url, job.item_id, job.batch_position) for job in jobs] == [
        (urls[0], "item-0", 0),
        (urls[1], "item-1", 1),
    ]
    assert all(job.webhook_url is None for job in jobs)  # the batch has the one webhook
    events = await outbox_events(db, [job.id for job in jobs])
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
    jobs = await jobs_of(db, body["batch_id"])
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
    assert "'url' column" in problem(response, 422, "invalid-request")["detail"]


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
    jobs = await jobs_of(db, body["batch_id"])
    assert [job.source_name for job in jobs] == ["red.jpg", "blue.jpg"]
    for job in jobs:
        assert (api.blob_dir / job.input_key).read_bytes()[:2] == b"\xff\xd8"
    events = await outbox_events(db, [job.id for job in jobs])
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
    assert "file 1 (page.html)" in problem(response, 415, "unsupported-media-type")["detail"]
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Batch)) == before


async def test_1001_items_are_refused_with_413_and_nothing_is_created(api, tenant_key, db):
    async with db() as session:
        before = await session.scalar(select(func.count()).select_from(Job))
    urls = [f"https://c.example/{index}.jpg" for index in range(1001)]
    problem(await submit_url_batch(api, tenant_key, urls), 413, "batch-too-large")
    csv_text = "url\n" + "\n".join(urls) + "\n"
    response = await api.client.post(
        "/v1/batches",
        files={"file": ("urls.csv", csv_text.encode())},
        data={"pipeline": json.dumps(RESIZE_THEN_PNG)},
        headers=api.as_tenant(tenant_key),
    )
    problem(response, 413, "batch-too-large")
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == before


async def test_1000_items_are_accepted_in_one_transaction(api, tenant_key, db):
    urls = [f"https://d.example/{index}.jpg" for index in range(1000)]
    response = await submit_url_batch(api, tenant_key, urls)
    assert response.status_code == 202, response.text
    assert response.json()["jobs"] == 1000
    view = (
        await api.client.get(f"/v1/batches/{response.json()['batch_id']}?offset=990", headers=api.as_tenant(tenant_key))
    ).json()
    assert view["totals"]["total"] == 1000
    assert [item["position"] for item in view["items"]] == list(range(990, 1000))
    assert view["next_offset"] is None


async def test_an_invalid_item_is_reported_by_position_and_nothing_is_created(api, tenant_key):
    response = await submit_url_batch(api, tenant_key, ["https://e.example/a.jpg", "file:///etc/passwd"])
    body = problem(response, 422, "invalid-request")
    assert body["errors"] == [{"loc": ["items", 1, "url"], "msg": "'url' must use http or https, not 'file'"}]


async def test_items_page_with_offset_and_limit(api, tenant_key):
    urls = [f"https://f.example/{index}.jpg" for index in range(25)]
    batch_id = (await submit_url_batch(api, tenant_key, urls)).json()["batch_id"]
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
    problem(too_big, 422, "invalid-request")


async def test_another_tenants_batch_is_404(api, tenant_key, other_tenant_key):
    batch_id = (await submit_url_batch(api, tenant_key, ["https://g.example/a.jpg"])).json()["batch_id"]
    for call in (
        api.client.get(f"/v1/batches/{batch_id}", headers=api.as_tenant(other_tenant_key)),
        api.client.delete(f"/v1/batches/{batch_id}", headers=api.as_tenant(other_tenant_key)),
        api.client.post(f"/v1/batches/{batch_id}/retry", headers=api.as_tenant(other_tenant_key)),
        api.client.get(f"/v1/batches/{batch_id}/events", headers=api.as_tenant(other_tenant_key)),
    ):
        problem(await call, 404, "not-found")


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
        problem(response, 422, "invalid-request")


async def test_more_than_1000_files_is_a_413(api, tenant_key, gateway_settings):
    image = jpeg(8, 8)
    response = await api.client.post(
        "/v1/batches",
        files=[("files", (f"{index}.jpg", image)) for index in range(1001)],
        data={"pipeline": EXAMPLE_PIPELINE},
        headers=api.as_tenant(tenant_key),
    )
    problem(response, 413, "batch-too-large")


async def test_a_batch_idempotency_key_over_200_characters_is_a_422_problem_and_creates_nothing(api, tenant_key, db):
    async with db() as session:
        before = await session.scalar(select(func.count()).select_from(Batch))
    items = [{"url": "https://a.example/1.jpg", "id": "item-0"}]
    response = await api.client.post(
        "/v1/batches",
        json={"items": items, "pipeline": RESIZE_THEN_PNG},
        headers={**api.as_tenant(tenant_key), "Idempotency-Key": "b" * 201},
    )
    body = problem(response, 422, "invalid-request")
    assert body["errors"] == [
        {"loc": ["header", "idempotency-key"], "msg": "String should have at most 200 characters"}
    ]
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Batch)) == before
