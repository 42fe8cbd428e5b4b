"""Request latency is recorded by route template and status; API keys and webhook secrets have their shapes."""

import base64

import pytest
from starlette.types import Message, Receive, Scope, Send

from pixtools_gateway.middleware import REQUEST_SECONDS, RequestTimer
from pixtools_gateway.security import hash_api_key, new_api_key, new_webhook_secret


class Route:
    path = "/v1/jobs/{job_id}"


def _count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    samples = [sample for metric in REQUEST_SECONDS.collect() for sample in metric.samples]
    return sum(s.value for s in samples if s.name.endswith("_count") and s.labels == labels)


async def _call(app: RequestTimer, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_request_is_timed_under_its_route_template_and_status() -> None:
    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = Route()
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    before = _count("GET", Route.path, "404")
    sent = await _call(RequestTimer(answer), {"type": "http", "method": "GET"})
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert _count("GET", Route.path, "404") == before + 1


async def test_a_request_that_raises_is_timed_as_a_500_on_no_route() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    before = _count("POST", "unmatched", "500")
    with pytest.raises(RuntimeError):
        await _call(RequestTimer(crash), {"type": "http", "method": "POST"})
    assert _count("POST", "unmatched", "500") == before + 1


async def test_lifespan_messages_pass_through_untimed() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await _call(RequestTimer(app), {"type": "lifespan"})
    assert seen == ["lifespan"]


def test_key_prefixes_tell_tenant_keys_from_admin_keys() -> None:
    tenant, admin = new_api_key(), new_api_key("admin")
    assert tenant.startswith("pxt_")
    assert admin.startswith("pxa_")
    assert len(tenant) > 40
    assert tenant != new_api_key()


def test_keys_are_stored_as_their_sha256() -> None:
    assert hash_api_key("pxt_abc") == "299b2c459ed299d0e31816020c731c648271e6f2e2b05878ebc9341a20a763f0"


def test_webhook_secrets_follow_standard_webhooks() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
