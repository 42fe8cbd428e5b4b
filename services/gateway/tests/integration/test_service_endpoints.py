"""Health, documentation and the webhook secret endpoints."""

import pytest

pytestmark = pytest.mark.integration


async def test_readyz_checks_database_broker_and_storage(api):
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


async def test_metrics_are_exposed_for_prometheus(api):
    await api.client.get("/healthz")
    response = await api.client.get("/metrics")
    assert "pixtools_http_request_seconds" in response.text


async def test_asyncapi_is_served_as_json_and_as_a_page(api):
    document = (await api.client.get("/asyncapi.json")).json()
    assert "job.completed.v1" in document["channels"]
    page = await api.client.get("/asyncapi")
    assert page.headers["content-type"].startswith("text/html")
    assert "step.requested.v1.{service}" in page.text


async def test_openapi_documents_the_jobs_api(api):
    spec = (await api.client.get("/openapi.json")).json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events"} <= set(spec["paths"])
    assert (await api.client.get("/docs")).status_code == 200


async def test_webhook_secret_rotation_keeps_the_old_secret_for_a_grace_period(api, tenant_key):
    headers = api.as_tenant(tenant_key)
    first = (await api.client.get("/v1/webhooks/secret", headers=headers)).json()
    assert first["secret"].startswith("whsec_")
    rotated = (await api.client.post("/v1/webhooks/secret/rotate", headers=headers)).json()
    assert rotated["secret"] != first["secret"]
    assert rotated["previous_valid_until"] is not None
    again = (await api.client.get("/v1/webhooks/secret", headers=headers)).json()
    assert again["secret"] == rotated["secret"]


async def test_unknown_route_is_a_problem_document(api):
    response = await api.client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
