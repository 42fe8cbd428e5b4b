"""Liveness, readiness and metrics."""

import asyncio
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from pixtools_gateway.api.deps import Shared

router = APIRouter(tags=["operations"])


class Liveness(BaseModel):
    """The process is serving."""

    status: Literal["ok"] = Field(description="Always 'ok' when the process answers.")


class Readiness(BaseModel):
    """Whether the gateway can serve requests, and the check of each dependency."""

    status: Literal["ready", "not ready"] = Field(description="'ready' only when every check is 'ok'.")
    checks: dict[str, str] = Field(description="'ok', or 'failed: <reason>', for each of database, broker and storage.")


@router.get("/healthz", summary="Liveness")
async def healthz() -> Liveness:
    """The process is serving."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: database, broker and storage",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency does not answer."}},
)
async def readyz(request: Request, shared: Shared) -> JSONResponse:
    """Ready only when the database, the broker and storage all answer."""

    async def database() -> None:
        async with shared.sessions() as session:
            await session.execute(text("SELECT 1"))

    async def broker() -> None:
        connection = request.app.state.broker
        if connection is None or connection.is_closed:
            raise ConnectionError("broker connection is closed")

    checks = {"database": database, "broker": broker, "storage": shared.blobs.check}
    results = await asyncio.gather(*(asyncio.wait_for(check(), 3) for check in checks.values()), return_exceptions=True)
    report = {
        name: "ok" if result is None else f"failed: {type(result).__name__}: {result}"
        for name, result in zip(checks, results, strict=True)
    }
    ready = all(value == "ok" for value in report.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": report}, status_code=200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus exposition."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
