"""HTTP errors as application/problem+json, each with a stable type."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pixtools_db.lifecycle import IllegalMove

PROBLEM_BASE = "https://pixtools.dev/problems/"
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

log = logging.getLogger(__name__)


class Problem(Exception):
    """An error the API reports as a problem document."""

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(
        self, detail: str, *, errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers


class Unauthorized(Problem):
    """No valid API key or access token was sent."""

    status, slug, title = 401, "unauthorized", "Missing or invalid credentials"


class Forbidden(Problem):
    """The key may not do this: it lacks the operation's scope (the detail names it)."""

    status, slug, title = 403, "forbidden", "Not allowed"


class InvalidLink(Problem):
    """A signed output link that was altered, or has expired."""

    status, slug, title = 403, "invalid-link", "Invalid or expired link"


class NotFound(Problem):
    """Nothing of this tenant's has that id."""

    status, slug, title = 404, "not-found", "Not found"


class IdempotencyConflict(Problem):
    """The idempotency key was used for a different request."""

    status, slug, title = 409, "idempotency-conflict", "Idempotency key reused with a different request"


class UploadTooLarge(Problem):
    """The upload exceeds the byte limit."""

    status, slug, title = 413, "upload-too-large", "Upload too large"


class UnsupportedMedia(Problem):
    """The request or the uploaded file has a type the API does not take."""

    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class InvalidRequest(Problem):
    """A field is missing or malformed."""

    status, slug, title = 422, "invalid-request", "Invalid request"


class InvalidPipeline(Problem):
    """The pipeline does not validate."""

    status, slug, title = 422, "invalid-pipeline", "Invalid pipeline"


class InvalidImage(Problem):
    """The file is not a decodable image within the limits."""

    status, slug, title = 422, "invalid-image", "Invalid image"


class BlockedWebhook(Problem):
    """The webhook URL points somewhere the service will not call."""

    status, slug, title = 422, "blocked-webhook-url", "Webhook URL not allowed"


class StateConflict(Problem):
    """The job or batch is in a state that does not allow this (retrying a running job, cancelling a finished one)."""

    status, slug, title = 409, "state-conflict", "Not possible in the current state"


class BatchTooLarge(Problem):
    """The batch has more items than allowed; nothing was created."""

    status, slug, title = 413, "batch-too-large", "Batch too large"


class RequestTimeout(Problem):
    """The client sent its request body too slowly."""

    status, slug, title = 408, "request-timeout", "Request timeout"


class RateLimited(Problem):
    """The tenant has spent its allowance of a route class; `Retry-After` says when to try again."""

    status, slug, title = 429, "rate-limited", "Rate limit exceeded"


class QuotaExceeded(Problem):
    """The tenant has as many unfinished jobs as its quota allows; new ones wait until some finish."""

    status, slug, title = 429, "quota-exceeded", "Quota exceeded"


def problem_response(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """Build a problem+json response."""
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    # Every refusal passes here, so each one is logged once with its stable type.
    log.info("request rejected", extra={"problem_type": body["type"], "status": status, "detail": detail})
    body.update({key: value for key, value in extra.items() if value is not None and key != "headers"})
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=extra.get("headers"))


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (RFC 9110 `Allow`): the router names only the first route's."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error, including framework ones, as problem+json."""

    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Problem)
        return problem_response(
            error.status, error.slug, error.title, error.detail, errors=error.errors, headers=error.headers
        )

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = [{"loc": list(item["loc"]), "msg": item["msg"]} for item in error.errors()]
        return problem_response(
            422, "invalid-request", "Invalid request", "the request did not validate", errors=errors
        )

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return problem_response(error.status_code, slug, str(error.detail), str(error.detail), headers=headers or None)

    async def on_illegal_move(request: Request, error: Exception) -> JSONResponse:
        # A cancel, retry or replay that raced a change of the job's state: the state no longer allows it.
        conflict = StateConflict(str(error))
        return problem_response(conflict.status, conflict.slug, conflict.title, conflict.detail)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(IllegalMove, on_illegal_move)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
