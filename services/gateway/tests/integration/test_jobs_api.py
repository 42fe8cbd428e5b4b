"""The jobs API over real Postgres, RabbitMQ and storage."""

import asyncio
import json
import re
import struct
import zlib

import pytest
from sqlalchemy import func, select

from pixtools_db import Job, Outbox, Step, create_engine, session_factory

from ..conftest import EXAMPLE_PIPELINE, jpeg

pytestmark = pytest.mark.integration


async def _submit(api, key, data=None, pipeline=EXAMPLE_PIPELINE, headers=None, **fields):
    return await api.client.post(
        "/v1/jobs",
        files={"file": ("photo.jpg", data if data is not None else jpeg())},
        data={"pipeline": pipeline, **fields},
        headers={**api.as_tenant(key), **(headers or {})},
    )


async def _rows(database_url, model, **where):
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            query = select(func.count()).select_from(model)
            for column, value in where.items():
                query = query.where(getattr(model, column) == value)
            return await session.scalar(query)
    finally:
        await engine.dispose()


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/" + slug)
    assert body["status"] == status
    return body


async def test_submission_answers_202_only_after_job_and_outbox_rows_are_committed(api, tenant_key, database_url):
    response = await _submit(api, tenant_key)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "accepted"
    assert response.headers["location"].endswith(f"/v1/jobs/{body['job_id']}")
    engine = create_engine(database_url, pool_size=1)
    async with session_factory(engine)() as session:
        job = await session.get(Job, body["job_id"])
        assert job is not None
        assert job.leaf_count == 3
        assert job.step_count == 4
        types = (
            await session.scalars(select(Outbox.routing_key).where(Outbox.body.contains(body["job_id"].encode())))
        ).all()
    await engine.dispose()
    assert sorted(types) == ["job.submitted.v1", "step.requested.v1.ingest"]


async def test_read_job_shows_every_step_pending_with_validated_params(api, tenant_key):
    job_id = (await _submit(api, tenant_key)).json()["job_id"]
    job = (await api.client.get(f"/v1/jobs/{job_id}", headers=api.as_tenant(tenant_key))).json()
    assert job["state"] == "accepted"
    assert [(step["id"], step["op"], step["state"]) for step in job["steps"]] == [
        ("0", "resize", "pending"),
        ("1.0.0", "convert", "pending"),
        ("1.1.0", "convert", "pending"),
        ("1.2.0", "metadata", "pending"),
    ]
    assert job["steps"][0]["params"] == {"width": 256, "height": None, "fit": "inside", "upscale": False}
    assert job["input"]["content_type"] == "image/jpeg"
    assert (job["input"]["width"], job["input"]["height"]) == (64, 48)
    assert job["outputs"] == []


async def test_missing_or_wrong_api_key_is_401_problem(api):
    _problem(await api.client.get("/v1/jobs"), 401, "unauthorized")
    response = await api.client.get("/v1/jobs", headers={"X-API-Key": "pxt_wrong"})
    _problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_x_api_key_header_authenticates_too(api, tenant_key):
    response = await api.client.get("/v1/jobs", headers={"X-API-Key": tenant_key})
    assert response.status_code == 200


async def test_same_idempotency_key_and_request_returns_the_same_job(api, tenant_key, database_url):
    first = await _submit(api, tenant_key, headers={"Idempotency-Key": "order-1"})
    again = await _submit(api, tenant_key, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    assert await _rows(database_url, Job, idempotency_key="order-1") == 1


async def test_concurrent_submissions_with_one_idempotency_key_commit_one_job_and_nothing_of_the_others(
    api, tenant_key, database_url
):
    # The losers' single INSERT (job, steps and outbox rows together) fails as a whole on the key's unique index.
    answers = await asyncio.gather(
        *(_submit(api, tenant_key, headers={"Idempotency-Key": "order-raced"}) for _ in range(5))
    )
    assert [answer.status_code for answer in answers] == [202] * 5
    job_ids = {answer.json()["job_id"] for answer in answers}
    assert len(job_ids) == 1
    assert await _rows(database_url, Job, idempotency_key="order-raced") == 1
    engine = create_engine(database_url, pool_size=1)
    async with session_factory(engine)() as session:
        tenant_id = await session.scalar(select(Job.tenant_id).where(Job.id == job_ids.pop()))
        jobs = (await session.scalars(select(Job.id).where(Job.tenant_id == tenant_id))).all()
        outbox = await session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.body.contains(str(jobs[0]).encode()))
        )
        steps = await session.scalar(select(func.count()).select_from(Step).where(Step.job_id == jobs[0]))
    await engine.dispose()
    assert len(jobs) == 1
    assert (outbox, steps) == (2, 4)
    assert len([path for path in api.blob_dir.rglob("*") if path.is_file()]) == 1


async def test_same_idempotency_key_with_a_different_request_is_409(api, tenant_key):
    await _submit(api, tenant_key, headers={"Idempotency-Key": "order-2"})
    response = await _submit(api, tenant_key, data=jpeg(colour=(1, 2, 3)), headers={"Idempotency-Key": "order-2"})
    _problem(response, 409, "idempotency-conflict")


async def test_idempotency_keys_are_per_tenant(api, tenant_key, other_tenant_key):
    mine = await _submit(api, tenant_key, headers={"Idempotency-Key": "shared"})
    theirs = await _submit(api, other_tenant_key, headers={"Idempotency-Key": "shared"})
    assert mine.json()["job_id"] != theirs.json()["job_id"]


async def test_an_idempotency_key_over_200_characters_is_a_422_problem_and_stores_nothing(
    api, tenant_key, database_url
):
    before = await _rows(database_url, Job)
    response = await _submit(api, tenant_key, headers={"Idempotency-Key": "k" * 201})
    body = _problem(response, 422, "invalid-request")
    assert body["errors"] == [
        {"loc": ["header", "idempotency-key"], "msg": "String should have at most 200 characters"}
    ]
    assert await _rows(database_url, Job) == before
    accepted = await _submit(api, tenant_key, headers={"Idempotency-Key": "k" * 200})
    assert accepted.status_code == 202, accepted.text
    assert await _rows(database_url, Job, idempotency_key="k" * 200) == 1


async def test_upload_over_the_byte_limit_is_413_and_stores_nothing(api, tenant_key, database_url):
    before = await _rows(database_url, Job)
    response = await _submit(api, tenant_key, data=b"\xff\xd8\xff" + b"0" * 600_000)
    _problem(response, 413, "upload-too-large")
    assert await _rows(database_url, Job) == before
    assert not api.blob_dir.exists() or not any(path.is_file() for path in api.blob_dir.rglob("*"))


async def test_declared_type_is_ignored_and_html_is_refused(api, tenant_key):
    response = await api.client.post(
        "/v1/jobs",
        files={"file": ("photo.jpg", b"<html><body>hi</body></html>", "image/jpeg")},
        data={"pipeline": EXAMPLE_PIPELINE},
        headers=api.as_tenant(tenant_key),
    )
    _problem(response, 415, "unsupported-media-type")


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


async def test_decompression_bomb_is_refused_from_its_header(api, tenant_key):
    response = await _submit(api, tenant_key, data=_png_header(50_000, 50_000))
    body = _problem(response, 422, "invalid-image")
    assert "limit" in body["detail"]


async def test_empty_file_is_refused(api, tenant_key):
    _problem(await _submit(api, tenant_key, data=b""), 422, "invalid-image")


@pytest.mark.parametrize(
    ("pipeline", "fragment"),
    [
        ("not json", "not valid JSON"),
        (json.dumps([{"op": "sharpen"}]), "sharpen"),
        (json.dumps([{"op": "metadata"}] * 40), "limit is 32"),
    ],
)
async def test_invalid_pipeline_is_422_with_the_reason(api, tenant_key, pipeline, fragment):
    body = _problem(await _submit(api, tenant_key, pipeline=pipeline), 422, "invalid-pipeline")
    assert fragment in json.dumps(body)


async def test_webhook_to_a_private_address_is_refused(api, tenant_key):
    body = _problem(await _submit(api, tenant_key, webhook_url="http://10.0.0.5/hook"), 422, "blocked-webhook-url")
    assert "not public" in body["detail"]


async def test_another_tenants_job_output_and_stream_answer_404(api, tenant_key, other_tenant_key):
    job_id = (await _submit(api, tenant_key)).json()["job_id"]
    foreign = api.as_tenant(other_tenant_key)
    _problem(await api.client.get(f"/v1/jobs/{job_id}", headers=foreign), 404, "not-found")
    _problem(await api.client.get(f"/v1/jobs/{job_id}/events", headers=foreign), 404, "not-found")
    output = f"/v1/jobs/{job_id}/outputs/00000000-0000-0000-0000-000000000000"
    _problem(await api.client.get(output, headers=foreign), 404, "not-found")


async def test_listing_is_tenant_scoped_and_pages_with_a_cursor(api, tenant_key, other_tenant_key):
    mine = [(await _submit(api, tenant_key, data=jpeg(colour=(index, 0, 0)))).json()["job_id"] for index in range(5)]
    await _submit(api, other_tenant_key)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/jobs", params=params, headers=api.as_tenant(tenant_key))).json()
        seen.extend(item["job_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(mine))
    accepted = await api.client.get("/v1/jobs", params={"state": "accepted"}, headers=api.as_tenant(tenant_key))
    assert len(accepted.json()["items"]) == 5
    succeeded = await api.client.get("/v1/jobs", params={"state": "succeeded"}, headers=api.as_tenant(tenant_key))
    assert succeeded.json()["items"] == []


async def test_bad_cursor_is_a_422_problem(api, tenant_key):
    response = await api.client.get("/v1/jobs", params={"cursor": "@@@"}, headers=api.as_tenant(tenant_key))
    _problem(response, 422, "invalid-request")


def _submissions_left(response) -> int:
    """The `r` of a response's RateLimit field for the submissions policy."""
    found = re.fullmatch(r'"submissions";r=(\d+);t=\d+', response.headers["RateLimit"])
    assert found, response.headers.get("RateLimit")
    return int(found.group(1))


async def test_a_submission_spends_one_submission_and_a_credential_refused_its_scope_spends_none(api, tenant_key):
    created = await api.client.post(
        "/v1/api-keys", json={"name": "reader", "scopes": ["jobs:read"]}, headers=api.as_tenant(tenant_key)
    )
    assert created.status_code == 201, created.text
    reader = created.json()["key"]

    first = await _submit(api, tenant_key)
    refused = await _submit(api, reader)
    second = await _submit(api, tenant_key)

    assert first.status_code == second.status_code == 202
    _problem(refused, 403, "forbidden")
    assert "'jobs:write'" in refused.json()["detail"]
    assert "RateLimit" not in refused.headers, "a refused credential spends none of the tenant's submissions"
    assert _submissions_left(second) == _submissions_left(first) - 1
