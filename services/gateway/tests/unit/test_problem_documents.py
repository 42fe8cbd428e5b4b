"""Every error, ours or the framework's, answers as application/problem+json with a stable type."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from pixtools_db.lifecycle import IllegalMove
from pixtools_gateway.errors import (
    PROBLEM_BASE,
    BatchTooLarge,
    InvalidPipeline,
    Unauthorized,
    install_problem_handlers,
    problem_response,
)


def test_a_problem_response_carries_type_title_status_detail_and_extras() -> None:
    response = problem_response(409, "state-conflict", "Conflict", "not now", errors=[{"loc": ["a"]}], hint=None)
    assert response.status_code == 409
    assert response.media_type == "application/problem+json"
    assert json.loads(bytes(response.body)) == {
        "type": "https://pixtools.dev/problems/state-conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "not now",
        "errors": [{"loc": ["a"]}],
    }


def test_problem_headers_become_response_headers_not_body_members() -> None:
    response = problem_response(401, "unauthorized", "No", "no key", headers={"WWW-Authenticate": "Bearer"})
    assert response.headers["www-authenticate"] == "Bearer"
    assert "headers" not in json.loads(bytes(response.body))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/pipeline")
    async def pipeline() -> None:
        raise InvalidPipeline("the pipeline does not validate", errors=[{"loc": [0, "op"], "msg": "unknown"}])

    @app.get("/batch")
    async def batch() -> None:
        raise BatchTooLarge("a batch holds at most 1000 items")

    @app.get("/raced")
    async def raced() -> None:
        raise IllegalMove("job j cannot move from succeeded to running here")

    @app.get("/key")
    async def key() -> None:
        raise Unauthorized("send a key", headers={"WWW-Authenticate": 'Bearer realm="pixtools"'})

    @app.get("/count")
    async def count(limit: int) -> int:
        return limit

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit.test") as opened:
        yield opened


async def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    return body


async def test_a_raised_problem_keeps_its_status_slug_and_errors(client: httpx.AsyncClient) -> None:
    body = await _problem(await client.get("/pipeline"), 422, "invalid-pipeline")
    assert body["errors"] == [{"loc": [0, "op"], "msg": "unknown"}]
    await _problem(await client.get("/batch"), 413, "batch-too-large")


async def test_an_unauthorized_problem_sends_its_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/key")
    await _problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == 'Bearer realm="pixtools"'


async def test_framework_validation_errors_are_invalid_request_problems(client: httpx.AsyncClient) -> None:
    body = await _problem(await client.get("/count", params={"limit": "many"}), 422, "invalid-request")
    assert body["detail"] == "the request did not validate"
    assert [error["loc"] for error in body["errors"]] == [["query", "limit"]]  # type: ignore[attr-defined]


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    await _problem(await client.get("/nowhere"), 404, "not-found")
    await _problem(await client.post("/batch"), 405, "method-not-allowed")


async def test_a_state_move_the_table_refuses_is_a_409_state_conflict(client: httpx.AsyncClient) -> None:
    answer = await client.get("/raced")
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == {
        "type": PROBLEM_BASE + "state-conflict",
        "title": "Not possible in the current state",
        "status": 409,
        "detail": "job j cannot move from succeeded to running here",
    }
