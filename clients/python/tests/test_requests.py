"""What the clients send: credentials only to the gateway's origin, a User-Agent, typed answers and errors."""

import hashlib

import httpx
import pytest

from pixtools_client import (
    USER_AGENT,
    AsyncClient,
    Client,
    Conflict,
    IntegrityError,
    NotFound,
    Output,
    Unauthorized,
)
from pixtools_client._sse import EventDecoder

DATA = b"\x89PNG fake output bytes"


def output(url: str, sha256: str = hashlib.sha256(DATA).hexdigest()) -> Output:
    return Output.model_validate(
        {
            "id": "8c1f7f0e-3f4a-4a53-9a9b-9f0e0d1c2b3a",
            "step": "1.0",
            "op": "convert",
            "name": "image",
            "content_type": "image/png",
            "width": 2,
            "height": 2,
            "bytes": len(DATA),
            "sha256": sha256,
            "url": url,
        }
    )


def recording() -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=DATA)

    return seen, httpx.MockTransport(answer)


def test_the_api_key_goes_to_the_gateway_and_never_to_a_presigned_link(tmp_path):
    seen, transport = recording()
    with Client("http://gateway:8000", "secret-key", transport=transport) as api:
        api.download(output("http://gateway:8000/v1/jobs/j/outputs/o"), tmp_path)
        api.download(output("https://bucket.s3.amazonaws.com/o?X-Amz-Signature=abc"), tmp_path / "s3.png")
        api.download(output("http://gateway:9999/elsewhere"), tmp_path / "other-port.png")
    assert seen[0].headers["authorization"] == "Bearer secret-key"
    assert "authorization" not in seen[1].headers
    assert "x-api-key" not in seen[1].headers
    assert "authorization" not in seen[2].headers
    assert all(request.headers["user-agent"] == USER_AGENT for request in seen)
    assert (tmp_path / "1.0-image.png").read_bytes() == DATA
    assert (tmp_path / "s3.png").read_bytes() == DATA


def test_a_download_whose_bytes_differ_from_the_listed_digest_is_refused_and_not_kept(tmp_path):
    _, transport = recording()
    with Client("http://gateway", "k", transport=transport) as api, pytest.raises(IntegrityError):
        api.download(output("http://gateway/o", sha256="0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("status", "kind"), [(401, Unauthorized), (404, NotFound), (409, Conflict)])
def test_refusals_raise_their_kind_with_the_problem_document(status, kind):
    problem = {
        "type": "https://pixtools.dev/problems/x",
        "title": "Refused",
        "status": status,
        "detail": "because",
        "errors": [{"loc": ["pipeline"], "msg": "bad"}],
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=problem))
    with Client("http://gateway", "k", transport=transport) as api, pytest.raises(kind) as caught:
        api.get("0b0e8d4e-4d3c-4d2a-9a55-0c6b3e1f2a10")
    assert caught.value.problem.type == problem["type"]
    assert caught.value.detail == "because"
    assert caught.value.problem.errors == problem["errors"]
    assert str(caught.value) == "Refused: because"


def test_a_refusal_without_a_problem_document_still_says_what_happened():
    transport = httpx.MockTransport(lambda request: httpx.Response(404, text="<html>nope</html>"))
    with Client("http://gateway", "k", transport=transport) as api, pytest.raises(NotFound) as caught:
        api.operations()
    assert caught.value.title == "Not Found"
    assert caught.value.status == 404


async def test_the_async_client_sends_the_same_credentials_rules(tmp_path):
    seen, transport = recording()

    async def answer(request: httpx.Request) -> httpx.Response:
        return transport.handle_request(request)

    async with AsyncClient("http://gateway", "secret-key", transport=httpx.MockTransport(answer)) as api:
        await api.download(output("http://gateway/v1/jobs/j/outputs/o"), tmp_path / "a.png")
        await api.download(output("https://bucket.example/o"), tmp_path / "b.png")
    assert seen[0].headers["authorization"] == "Bearer secret-key"
    assert "authorization" not in seen[1].headers


def test_the_event_decoder_follows_the_server_sent_events_rules():
    decoder = EventDecoder()
    lines = [": ping", "event: step", "id: 12", 'data: {"a":', "data: 1}", "", "data: x", "", "id: 13", ""]
    events = [event for line in lines if (event := decoder.feed(line))]
    assert [(event.event, event.data, event.id) for event in events] == [
        ("step", '{"a":\n1}', "12"),
        ("message", "x", "12"),
    ]
    assert decoder.last_event_id == "13"
