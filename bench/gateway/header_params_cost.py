"""CPU of FastAPI's dependency solving for routes shaped like the submit route, with and without header parameters.

In one process, no I/O: each route's dependant is solved for a request with an `X-API-Key`, as FastAPI does per
request (`solve_dependencies`), `--calls` times per round, the routes in rotation for `--rounds` rounds; it prints
the median thread CPU per solve of each. The routes:

- `headers`: the submit route before `gwdeps`: a `Security` dependency over the two credential headers (as
  `api/limits.py:submitting_tenant`, with an empty body), plus the `Idempotency-Key` and `Prefer` header parameters;
- `no headers`: the same without the two header parameters (the submit route after `gwdeps`, which reads them with
  `api/deps.py:idempotency_key` and `requested_wait`: `reading by hand` times that, with the request and its headers);
- `no credentials`: the `Security` dependency alone, without the two credential headers below it;
- `bare`: a route with only the request.

    .venv/bin/python bench/gateway/header_params_cost.py [--calls 2000] [--rounds 8]
"""

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import FastAPI, Request, Security
from fastapi.dependencies.utils import solve_dependencies
from fastapi.routing import APIRoute
from fastapi.security import SecurityScopes

from pixtools_gateway.api.deps import BearerCredentials, IdempotencyKey, KeyHeader
from pixtools_gateway.api.jobs import PreferWait

TENANT = uuid.uuid4()
HEADERS = [
    (b"host", b"gateway.test"),
    (b"x-api-key", b"pxt_" + b"k" * 40),
    (b"content-type", b"multipart/form-data; boundary=x"),
    (b"content-length", b"210000"),
]


async def tenant(
    request: Request, security_scopes: SecurityScopes, bearer: BearerCredentials, key: KeyHeader
) -> uuid.UUID:
    """As `submitting_tenant`'s signature, with nothing in its body."""
    return TENANT


async def tenant_alone(request: Request) -> uuid.UUID:
    """A `Security` dependency without the credential headers."""
    return TENANT


Tenant = Annotated[uuid.UUID, Security(tenant, scopes=["jobs:write"])]
TenantAlone = Annotated[uuid.UUID, Security(tenant_alone, scopes=["jobs:write"])]


async def with_headers(
    request: Request, tenant_id: Tenant, key: IdempotencyKey = None, prefer: PreferWait = None
) -> None:
    """The submit route's dependencies before."""


async def without_headers(request: Request, tenant_id: Tenant) -> None:
    """The submit route's dependencies after."""


async def without_credentials(request: Request, tenant_id: TenantAlone) -> None:
    """The `Security` dependency alone."""


async def bare(request: Request) -> None:
    """Nothing to solve but the request."""


def request(app: FastAPI) -> Request:
    """A fresh request, as each HTTP request is."""
    return Request({"type": "http", "method": "POST", "path": "/", "headers": HEADERS, "query_string": b"", "app": app})


async def solving(app: FastAPI, route: APIRoute, calls: int) -> float:
    """Microseconds of thread CPU per solve of the route's dependencies."""
    started = time.thread_time()
    for _ in range(calls):
        async with AsyncExitStack() as outer, AsyncExitStack() as inner:
            fresh = request(app)
            fresh.scope["fastapi_inner_astack"] = inner
            fresh.scope["fastapi_function_astack"] = inner
            await solve_dependencies(
                request=fresh,
                dependant=route.dependant,
                body=None,
                dependency_overrides_provider=None,
                async_exit_stack=outer,
                embed_body_fields=False,
            )
    return (time.thread_time() - started) * 1e6 / calls


async def reading(app: FastAPI, calls: int) -> float:
    """Microseconds of thread CPU per request of reading the two headers by hand, as the submit route does now."""
    started = time.thread_time()
    for _ in range(calls):
        fresh = request(app)
        key = fresh.headers.get("idempotency-key")
        if key is not None and len(key) > 200:
            raise AssertionError("not sent")
        fresh.headers.getlist("prefer")
    return (time.thread_time() - started) * 1e6 / calls


async def run(args: argparse.Namespace) -> dict[str, Any]:
    app = FastAPI()
    endpoints: dict[str, Callable[..., Any]] = {
        "headers": with_headers,
        "no headers": without_headers,
        "no credentials": without_credentials,
        "bare": bare,
    }
    routes = {name: APIRoute("/", endpoint, methods=["POST"]) for name, endpoint in endpoints.items()}
    figures: dict[str, list[float]] = {name: [] for name in [*routes, "reading by hand"]}
    for _ in range(args.rounds):
        for name, route in routes.items():
            figures[name].append(await solving(app, route, args.calls))
        figures["reading by hand"].append(await reading(app, args.calls))
    return {name: round(statistics.median(values), 1) for name, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps({"median_us_per_solve": asyncio.run(run(args))}))


if __name__ == "__main__":
    main()
