"""Errors that mean the database is unreachable, shutting down or timing out answer 503 with Retry-After."""

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pixtools_gateway.outages import RETRY_AFTER_S, install_outage_handlers


def _app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_outage_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionRefusedError("connection refused"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_database_outage_raised_by_the_driver_itself_answers_503(error: Exception) -> None:
    response = TestClient(_app_raising(error)).get("/boom")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert type(error).__name__ in response.json()["detail"]


def test_a_constraint_violation_is_not_an_outage() -> None:
    client = TestClient(
        _app_raising(asyncpg.exceptions.UniqueViolationError("duplicate key")), raise_server_exceptions=False
    )
    assert client.get("/boom").status_code == 500
