"""Outages of what a request needs answer 503 with Retry-After, never 500: the same request works once it is back.

The database is the usual one. Its errors arrive in several shapes (SQLAlchemy's wrappers, asyncpg's own
errors on the notification listener's connection, a refused connection, a pool that timed out), and each means
the same thing to a client: try again shortly. Nothing is restarted: the engine replaces the connections the
outage broke on their next use, so service resumes by itself.
"""

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pixtools_gateway.errors import problem_response

RETRY_AFTER_S = 5
UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # The server shutting down or crashing, refusing connections while it starts, or a statement timeout: raised as
    # they are where a statement runs on the driver itself (the submit's INSERT), wrapped above otherwise.
    asyncpg.exceptions.OperatorInterventionError,
    ConnectionError,
)
"""Errors that mean a backing service is unreachable, not that the request is wrong."""


def install_outage_handlers(app: FastAPI) -> None:
    """Answer every outage error with 503 problem+json and a Retry-After header."""

    async def on_outage(request: Request, error: Exception) -> JSONResponse:
        return problem_response(
            503,
            "service-unavailable",
            "Service unavailable",
            f"a service this request needs is unreachable ({type(error).__name__}); retry after {RETRY_AFTER_S} s",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, on_outage)
