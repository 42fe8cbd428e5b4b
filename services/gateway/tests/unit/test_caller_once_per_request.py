"""A request's caller: authenticated once per request, though a limited route asks for it twice."""

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes
from starlette.requests import Request

from pixtools_gateway.adapters.key_cache import Caller
from pixtools_gateway.api.deps import caller
from pixtools_gateway.errors import Forbidden
from pixtools_gateway.security import JOBS_READ, JOBS_WRITE, hash_api_key

KEY = "pt_test_key"


class CountingKeys:
    """A key cache holding one key, counting its look-ups."""

    def __init__(self, who: Caller) -> None:
        self.who = who
        self.lookups = 0
        self.generation = 0

    def by_hash(self, key_hash: str) -> Caller | None:
        self.lookups += 1
        return self.who if key_hash == hash_api_key(KEY) else None


def _shared(keys: CountingKeys) -> Any:
    return SimpleNamespace(key_cache=keys, key_usage=SimpleNamespace(touch=lambda key_id: None))


def _request() -> Request:
    return Request({"type": "http", "headers": [], "method": "POST", "path": "/v1/jobs", "query_string": b""})


async def _ask(request: Request, shared: Any, scopes: list[str], key: str = KEY) -> Caller:
    bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)
    return await caller(request, SecurityScopes(scopes), shared, bearer, None)


async def test_the_second_ask_of_a_request_reuses_the_first_authentication() -> None:
    keys = CountingKeys(Caller(key_id=uuid.uuid4(), tenant_id=uuid.uuid4(), scopes=frozenset({JOBS_WRITE})))
    request, shared = _request(), _shared(keys)
    first = await _ask(request, shared, [])
    second = await _ask(request, shared, [JOBS_WRITE])
    assert first is second
    assert keys.lookups == 1
    await _ask(_request(), shared, [JOBS_WRITE])
    assert keys.lookups == 2, "another request authenticates again"


async def test_a_reused_caller_still_has_each_asks_scopes_checked() -> None:
    keys = CountingKeys(Caller(key_id=uuid.uuid4(), tenant_id=uuid.uuid4(), scopes=frozenset({JOBS_WRITE})))
    request, shared = _request(), _shared(keys)
    await _ask(request, shared, [JOBS_WRITE])
    with pytest.raises(Forbidden):
        await _ask(request, shared, [JOBS_READ])
