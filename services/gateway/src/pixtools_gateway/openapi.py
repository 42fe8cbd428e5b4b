"""The OpenAPI document other tools read: security, problem responses, typed streams and downloads, webhooks.

Routes declare what is particular to them (`problems(404, 409)`, `event_stream(...)`, `download(...)`); this
module adds what follows from the route's shape: 401 and 403 where a key is required, and 422 as a problem
document wherever parameters or a body are validated.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from pixtools_gateway.body_validation import inlined
from pixtools_gateway.errors import PROBLEM_BASE

PROBLEM_MEDIA_TYPE = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document: how every refusal and error of the API is answered.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": f"Stable URI of the problem type, for example `{PROBLEM_BASE}invalid-pipeline`.",
        },
        "title": {"type": "string", "description": "Short summary of the problem type."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What was wrong with this request."},
        "instance": {"type": "string", "description": "The occurrence, when the service names one."},
        "errors": {
            "type": "array",
            "description": "Validation problems only: each invalid field, where it is and what is wrong.",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}

# draft-ietf-httpapi-ratelimit-headers-10: structured fields naming the route class's policy.
RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit-Policy": {
        "description": 'The route class\'s quota and window, e.g. `"reads";q=200;w=2`.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of the quota and when it is restored, e.g. `"reads";r=73;t=1`.',
        "schema": {"type": "string"},
    },
}

_WHY = {
    400: "The body could not be parsed: malformed JSON or multipart.",
    401: "No credential, or a key or access token that is not valid, was revoked or has expired.",
    403: "The credential lacks the scope this operation needs (`detail` names it): a tenant key on an admin route.",
    404: "The tenant has nothing with that id (or it has expired).",
    409: "Not possible in the current state, or an idempotency key reused for a different request.",
    413: "The upload, or the number of batch items, is over the limit; nothing was created.",
    415: "The request's media type, or the uploaded file's, is not one the API takes.",
    422: "A parameter or the body did not validate; `errors` lists each problem.",
    429: "The tenant's rate limit for this route class (`rate-limited`) or its unfinished-jobs quota "
    "(`quota-exceeded`, submissions only) is spent; repeat it after `Retry-After`. A request repeated before "
    "`Retry-After` passes is held until then (at most `PIXTOOLS_REFUSAL_HOLD_S`, 1 s, and up to "
    "`PIXTOOLS_REFUSAL_HOLD_SPREAD_S`, 0.5 s, past it) before its 429: waiting costs the client time instead of the "
    "gateway's CPU. An idempotent replay (same `Idempotency-Key`) is answered "
    "as the first time even at the quota.",
    503: "A service the request needs (the database, the broker) is unreachable; repeat it after `Retry-After`.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Problem responses for a route's `responses=`."""
    return {status: _problem_response(status) for status in statuses}


def header_parameters(declared: Callable[..., None]) -> dict[str, Any]:
    """An `openapi_extra` with the header parameters of `declared` (a stub of header parameters only), as FastAPI
    writes them, for a busy route that reads those headers itself: FastAPI's validation of a header parameter costs
    more on every request than the route's own reading (`api/deps.py:idempotency_key`)."""
    document = get_openapi(title="", version="", routes=[APIRoute("/", declared, methods=["POST"])])
    return {"parameters": document["paths"]["/"]["post"]["parameters"]}


def problem(status: int, why: str) -> dict[int | str, dict[str, Any]]:
    """One problem response whose reason is particular to the route."""
    return {status: {**_problem_response(status), "description": why}}


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _WHY[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}}
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": "The Bearer challenge.", "schema": {"type": "string"}}
        }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait before repeating it.", "schema": {"type": "integer"}}
        }
    if status == 429:
        response["headers"].update(RATE_LIMIT_HEADERS)
    return response


def event_stream(description: str, example: str, **events: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 200 response of a server-sent events route; `events` maps each event name to its data model."""
    names = ", ".join(f"`{name}`" for name in events)
    each_event = {
        "description": "One event as the stream frames it: its name, its resume id, and its data as JSON text.",
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "id", "data"],
                "properties": {
                    "event": {"const": name},
                    "id": {"type": "string", "description": "Send back as `Last-Event-ID` to resume after it."},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": inlined(model.model_json_schema()),
                    },
                },
            }
            for name, model in events.items()
        ],
    }
    return {
        200: {
            "description": f"{description} Event names: {names}. Each event has an `id`; reconnect with "
            "`Last-Event-ID` to resume without missing a state change. Timestamps are RFC 3339 in UTC.",
            "content": {"text/event-stream": {"schema": each_event, "example": example}},
        }
    }


def download(description: str, media_types: list[str]) -> dict[int | str, dict[str, Any]]:
    """The 200 response of a route answering with bytes of one of `media_types`."""
    binary = {"type": "string", "format": "binary"}
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": binary} for media_type in media_types},
            "headers": {"ETag": {"description": "The content's SHA-256.", "schema": {"type": "string"}}},
        }
    }


def install_openapi(app: FastAPI) -> None:
    """Serve the refined document at /openapi.json, built once."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            generated = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                webhooks=app.webhooks.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = refine(generated)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def refine(document: dict[str, Any]) -> dict[str, Any]:
    """Problem responses for every operation, and the Problem schema in place of FastAPI's validation error."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            _add_problems(operation)
            _describe_scopes(operation)
    for path_item in document.get("webhooks", {}).values():
        for operation in path_item.values():
            # The receiver answers these, not the service: FastAPI's validation answer does not apply.
            operation["responses"].pop("422", None)
    return document


def _describe_scopes(operation: dict[str, Any]) -> None:
    """Say in words which scope an operation needs; the security requirements list it too."""
    if not operation.get("security"):
        return
    scopes = sorted(
        {scope for requirement in operation["security"] for names in requirement.values() for scope in names}
    )
    needs = ", ".join(f"`{scope}`" for scope in scopes) if scopes else "none: any valid key or access token"
    description = operation.get("description", "").rstrip()
    operation["description"] = f"{description}\n\nScope: {needs}.".lstrip()


def _add_problems(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    implied = []
    if operation.get("security"):
        # Every authenticated call reads the database (its key at least), so an outage answers 503.
        implied += [401, 403, 503]
    if operation.get("requestBody"):
        implied.append(400)
    if operation.get("parameters") or operation.get("requestBody") or "422" in responses:
        implied.append(422)
    for status in implied:
        if str(status) == "422" or str(status) not in responses:
            responses[str(status)] = _problem_response(status)
    operation["responses"] = dict(sorted(responses.items()))
