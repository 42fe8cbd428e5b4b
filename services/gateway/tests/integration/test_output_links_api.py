"""Signed output links through the app: they open without a key, and only as signed, for the output signed."""

import json
import time
import uuid
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from pixtools_db import Output
from pixtools_gateway.output_links import OutputLinks
from pixtools_platform.blobstore import LocalBlobStore

from ..conftest import jpeg
from .job_control_support import RESIZE_THEN_PNG, problem

pytestmark = pytest.mark.integration

SECRET = "integration-test-link-secret-0123456789"


@pytest.fixture
def gateway_settings(gateway_settings):
    return gateway_settings.model_copy(update={"output_link_secret": SecretStr(SECRET)})


async def _job_with_outputs(api, key, db, names: list[str]) -> tuple[str, dict[str, bytes]]:
    """A job whose steps stored one PNG output per name, as the stages and aggregator record them."""
    submitted = await api.client.post(
        "/v1/jobs",
        files={"file": ("a.jpg", jpeg())},
        data={"pipeline": json.dumps(RESIZE_THEN_PNG)},
        headers=api.as_tenant(key),
    )
    job_id = submitted.json()["job_id"]
    store = LocalBlobStore(api.blob_dir)
    stored: dict[str, bytes] = {}
    async with db.begin() as session:
        for index, name in enumerate(names):
            data = jpeg(16 + index, 8)
            key = f"jobs/x/{job_id}/steps/1/{name}.jpg"
            await store.put(key, data, "image/jpeg")
            stored[name] = data
            session.add(
                Output(
                    job_id=uuid.UUID(job_id),
                    step_id="1",
                    op="convert",
                    name=name,
                    role="image",
                    is_final=True,
                    key=key,
                    content_type="image/jpeg",
                    bytes=len(data),
                    sha256="cd" * 32,
                    width=16 + index,
                    height=8,
                )
            )
    return job_id, stored


async def _urls(api, key, job_id) -> dict[str, str]:
    job = (await api.client.get(f"/v1/jobs/{job_id}", headers=api.as_tenant(key))).json()
    return {output["name"]: output["url"] for output in job["outputs"]}


async def test_listed_output_url_opens_without_a_key_with_type_name_and_caching(api, tenant_key, db):
    job_id, stored = await _job_with_outputs(api, tenant_key, db, ["image"])
    url = (await _urls(api, tenant_key, job_id))["image"]
    assert url.startswith(f"http://gateway.test/v1/output-links/{job_id}/")
    assert "signature=" in url
    assert "expires=" in url
    response = await api.client.get(url)  # no key
    assert response.status_code == 200, response.text
    assert response.content == stored["image"]
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-disposition"] == 'inline; filename="1-image.jpg"'
    assert response.headers["x-content-type-options"] == "nosniff"
    cache_control = response.headers["cache-control"]
    assert cache_control.startswith("private, max-age=")
    assert 0 < int(cache_control.rpartition("=")[2]) <= api.settings.presign_expiry_s + 60


async def test_a_tampered_link_is_a_403_problem(api, tenant_key, db):
    job_id, _ = await _job_with_outputs(api, tenant_key, db, ["image"])
    url = (await _urls(api, tenant_key, job_id))["image"]
    path, _, query = url.partition("?")
    fields = dict(part.split("=", 1) for part in query.split("&"))
    later = f"{path}?expires={int(fields['expires']) + 86400}&signature={fields['signature']}"
    body = problem(await api.client.get(later), 403, "invalid-link")
    assert "signature" in body["detail"]
    forged = f"{path}?expires={fields['expires']}&signature={'A' * len(fields['signature'])}"
    problem(await api.client.get(forged), 403, "invalid-link")
    problem(await api.client.get(path), 422, "invalid-request")  # no signature at all


async def test_an_expired_link_is_a_403_problem(api, tenant_key, db):
    job_id, _ = await _job_with_outputs(api, tenant_key, db, ["image"])
    output_id = urlsplit((await _urls(api, tenant_key, job_id))["image"]).path.rsplit("/", 1)[1]
    signer = OutputLinks(SECRET.encode(), lifetime_s=60)
    expired = signer.sign(uuid.UUID(job_id), uuid.UUID(output_id), now=time.time() - 600)
    body = problem(await api.client.get(expired), 403, "invalid-link")
    assert "expired" in body["detail"]
    fresh = signer.sign(uuid.UUID(job_id), uuid.UUID(output_id))
    assert (await api.client.get(fresh)).status_code == 200, "the same key signs links the gateway accepts"


async def test_a_link_does_not_open_another_output(api, tenant_key, other_tenant_key, db):
    job_id, stored = await _job_with_outputs(api, tenant_key, db, ["first", "second"])
    urls = await _urls(api, tenant_key, job_id)
    first_path, _, first_query = urls["first"].partition("?")
    second_path = urls["second"].partition("?")[0]
    problem(await api.client.get(f"{second_path}?{first_query}"), 403, "invalid-link")
    other_job, _ = await _job_with_outputs(api, other_tenant_key, db, ["first"])
    moved = first_path.replace(job_id, other_job)
    problem(await api.client.get(f"{moved}?{first_query}"), 403, "invalid-link")
    assert (await api.client.get(urls["second"])).content == stored["second"]


async def test_the_authenticated_download_route_still_takes_the_key(api, tenant_key, db):
    job_id, stored = await _job_with_outputs(api, tenant_key, db, ["image"])
    output_id = urlsplit((await _urls(api, tenant_key, job_id))["image"]).path.rsplit("/", 1)[1]
    route = f"/v1/jobs/{job_id}/outputs/{output_id}"
    response = await api.client.get(route, headers=api.as_tenant(tenant_key))
    assert response.status_code == 200
    assert response.content == stored["image"]
    problem(await api.client.get(route), 401, "unauthorized")
