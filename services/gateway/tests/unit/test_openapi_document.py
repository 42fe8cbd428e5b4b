"""The OpenAPI document other teams' tools read: security, problem responses, streams, downloads and webhooks."""

from typing import Any

import httpx
import pytest

from pixtools_gateway.app import create_app
from pixtools_gateway.settings import GatewaySettings

PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(GatewaySettings()).openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in document["paths"].items() for method, op in item.items()]


# The scope each /v1 operation requires; the operation catalogue and the token exchange take any credential.
SCOPES = {
    ("post", "/v1/jobs"): "jobs:write",
    ("delete", "/v1/jobs/{job_id}"): "jobs:write",
    ("post", "/v1/jobs/{job_id}/retry"): "jobs:write",
    ("post", "/v1/batches"): "jobs:write",
    ("delete", "/v1/batches/{batch_id}"): "jobs:write",
    ("post", "/v1/batches/{batch_id}/retry"): "jobs:write",
    ("get", "/v1/webhooks/secret"): "webhooks:manage",
    ("post", "/v1/webhooks/secret/rotate"): "webhooks:manage",
    ("get", "/v1/api-keys"): "keys:manage",
    ("post", "/v1/api-keys"): "keys:manage",
    ("delete", "/v1/api-keys/{key_id}"): "keys:manage",
    ("get", "/v1/operations"): None,
    ("post", "/v1/auth/token"): None,
}


def _required_scope(method: str, path: str) -> str | None:
    if path.startswith("/v1/admin/"):
        return "admin"
    return SCOPES.get((method, path), "jobs:read" if method == "get" else "?")


def test_keys_are_security_schemes_not_header_parameters(document) -> None:
    assert document["components"]["securitySchemes"] == {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "A tenant or admin API key."},
        "Bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key or JWT",
            "description": "An API key, or an access token from `POST /v1/auth/token` (a JWT), "
            "as `Authorization: Bearer`.",
        },
    }
    for method, path, op in operations(document):
        names = {parameter["name"].lower() for parameter in op.get("parameters", [])}
        assert not names & {"authorization", "x-api-key"}, (method, path)
        if path.startswith("/v1/output-links/"):
            assert op["security"] == [], "a signed link is its own credential: explicitly no key"
        elif path.startswith("/v1/") and path != "/v1/auth/refresh":
            scope = _required_scope(method, path)
            scopes = [scope] if scope else []
            assert op["security"] == [{"Bearer": scopes}, {"ApiKey": scopes}], (method, path)
            assert op["description"].endswith(f"Scope: `{scope}`." if scope else "any valid key or access token.")
        else:
            # The refresh token is its own credential; health, documents and the JWKS are public.
            assert "security" not in op, (method, path)


def test_every_error_is_declared_as_a_problem_document(document) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail"]
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if status.startswith("4"):
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (method, path)
        if op.get("security"):
            assert {"401", "403"} <= set(op["responses"]), (method, path)
    submit = document["paths"]["/v1/jobs"]["post"]["responses"]
    assert {"400", "409", "413", "415", "422"} <= set(submit)
    assert {"404", "409"} <= set(document["paths"]["/v1/jobs/{job_id}"]["delete"]["responses"])
    assert "stays readable" in document["paths"]["/v1/jobs/{job_id}"]["delete"]["description"]


def test_streams_downloads_and_health_have_their_real_media_types(document) -> None:
    for path in ("/v1/jobs/{job_id}/events", "/v1/batches/{batch_id}/events"):
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"]
        events = content["text/event-stream"]["schema"]["oneOf"]
        assert all(event["required"] == ["event", "id", "data"] for event in events)
    job_events = document["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert [e["properties"]["event"]["const"] for e in job_events["text/event-stream"]["schema"]["oneOf"]] == [
        "step",
        "job",
    ]
    download = document["paths"]["/v1/jobs/{job_id}/outputs/{output_id}"]["get"]["responses"]["200"]["content"]
    assert download["image/webp"] == {"schema": {"type": "string", "format": "binary"}}
    assert "application/json" in download
    ready = document["paths"]["/readyz"]["get"]["responses"]
    assert ready["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}


def test_request_bodies_have_examples(document) -> None:
    for path in ("/v1/jobs", "/v1/batches"):
        for media_type in document["paths"][path]["post"]["requestBody"]["content"].values():
            assert media_type["example"]["pipeline"]
    replay = document["paths"]["/v1/admin/dead-letters/replay"]["post"]["requestBody"]["content"]
    schema_name = replay["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert document["components"]["schemas"][schema_name]["examples"]


def test_webhooks_document_the_standard_webhooks_headers_and_verification(document) -> None:
    assert document["openapi"].startswith("3.1")
    for name in ("job", "batch"):
        hook = document["webhooks"][name]["post"]
        headers = {p["name"] for p in hook["parameters"] if p["in"] == "header" and p["required"]}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert "HMAC-SHA256" in hook["description"]
        assert "422" not in hook["responses"]


async def test_a_405_is_a_problem_that_lists_every_allowed_method() -> None:
    app = create_app(GatewaySettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit.test") as client:
        response = await client.put("/v1/jobs/3f1c9a52-7a43-4d4b-9a53-8f1f7a5f1d11")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == "DELETE, GET"
