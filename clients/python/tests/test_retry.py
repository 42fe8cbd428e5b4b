"""The retry policy, driven through the clients by an httpx MockTransport standing in for the server."""

import email.utils
import time

import httpx
import pytest

from pixtools_client import (
    AsyncClient,
    Client,
    InvalidRequest,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    TransportError,
    WaitTimeout,
)
from pixtools_client._retry import retry_after_seconds

FAST = RetryPolicy(attempts=4, base_delay_s=0.001, max_delay_s=0.002)
JOB = {
    "job_id": "5f0c6a57-8a7e-4c38-9d59-3c1b8f0f3a11",
    "state": "running",
    "created_at": "2026-01-01T00:00:00Z",
    "pipeline": [{"op": "metadata"}],
    "steps": [],
    "outputs": [],
    "metadata": {},
}
ACCEPTED = {
    "job_id": JOB["job_id"],
    "state": "accepted",
    "status_url": "http://api/v1/jobs/x",
    "events_url": "http://api/v1/jobs/x/events",
}
PROBLEM = {"type": "https://pixtools.dev/problems/rate-limited", "title": "Too many requests", "status": 429}


class Script:
    """Answers the requests in order from a list of responses (or exceptions), recording what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def refused(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json={**PROBLEM, "status": status}, headers=headers)


def client(script: Script, policy: RetryPolicy = FAST) -> Client:
    return Client("http://api", "key", retry=policy, transport=httpx.MockTransport(script))


def test_a_read_is_retried_after_503_and_429_and_then_succeeds():
    script = Script(refused(503, "0"), refused(429, "0"), httpx.Response(200, json=JOB))
    with client(script) as api:
        assert str(api.get(JOB["job_id"]).job_id) == JOB["job_id"]
    assert len(script.requests) == 3


def test_retry_after_is_honoured_before_the_next_try():
    script = Script(refused(429, "1"), httpx.Response(200, json=JOB))
    started = time.monotonic()
    with client(script) as api:
        api.get(JOB["job_id"])
    assert time.monotonic() - started >= 0.95


def test_a_submission_is_retried_with_the_same_idempotency_key_and_the_same_body():
    script = Script(httpx.ConnectError("refused"), refused(503, "0"), httpx.Response(202, json=ACCEPTED))
    with client(script) as api:
        accepted = api.submit(b"\xff\xd8 not really a jpeg", [{"op": "metadata"}], idempotency_key="k-1")
    assert accepted.state == "accepted"
    assert [request.headers["idempotency-key"] for request in script.requests] == ["k-1"] * 3
    assert len({request.content for request in script.requests}) == 1
    assert b"not really a jpeg" in script.requests[0].content


def test_a_submission_without_a_key_gets_one_generated_and_keeps_it_across_retries():
    script = Script(refused(503, "0"), httpx.Response(202, json=ACCEPTED))
    with client(script) as api:
        api.submit_url("https://example.com/a.jpg", [{"op": "metadata"}])
    keys = {request.headers["idempotency-key"] for request in script.requests}
    assert len(keys) == 1
    assert next(iter(keys)).startswith("sdk-")


def test_a_job_retry_call_is_not_repeated_after_a_503_or_a_broken_read():
    script = Script(refused(503, "0"))
    with client(script) as api, pytest.raises(ServiceUnavailable) as caught:
        api.retry(JOB["job_id"])
    assert len(script.requests) == 1
    assert caught.value.retry_after == 0
    broken = Script(httpx.ReadError("reset"))
    with client(broken) as api, pytest.raises(TransportError):
        api.retry(JOB["job_id"])
    assert len(broken.requests) == 1


def test_a_connection_never_opened_is_retried_even_for_a_call_that_is_not_idempotent():
    script = Script(
        httpx.ConnectError("refused"), httpx.Response(202, json={**JOB, "changed": True, "status_url": "x"})
    )
    with client(script) as api:
        assert api.retry(JOB["job_id"]).changed
    assert len(script.requests) == 2


def test_the_attempts_are_capped_and_the_last_refusal_is_raised_with_its_problem():
    script = Script(*(refused(429, "0") for _ in range(4)))
    with client(script) as api, pytest.raises(RateLimited) as caught:
        api.get(JOB["job_id"])
    assert len(script.requests) == 4
    assert caught.value.status == 429
    assert caught.value.title == "Too many requests"
    assert caught.value.retry_after == 0


def test_a_retry_after_beyond_the_limit_is_raised_at_once():
    script = Script(refused(429, "3600"))
    with client(script) as api, pytest.raises(RateLimited) as caught:
        api.get(JOB["job_id"])
    assert len(script.requests) == 1
    assert caught.value.retry_after == 3600


def test_other_refusals_are_not_retried():
    script = Script(httpx.Response(422, json={"type": "t", "title": "Invalid pipeline", "detail": "no op 'x'"}))
    with client(script) as api, pytest.raises(InvalidRequest, match="Invalid pipeline: no op 'x'"):
        api.get(JOB["job_id"])
    assert len(script.requests) == 1


def test_connection_errors_end_in_a_transport_error_after_the_last_attempt():
    script = Script(*(httpx.ConnectError("refused") for _ in range(4)))
    with client(script) as api, pytest.raises(TransportError, match="refused"):
        api.operations()
    assert len(script.requests) == 4


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(base_delay_s=1, factor=2, max_delay_s=5, jitter=0)
    assert [policy.backoff(attempt) for attempt in range(1, 6)] == [1, 2, 4, 5, 5]
    jittered = RetryPolicy(base_delay_s=1, factor=2, max_delay_s=5, jitter=0.5)
    assert all(1 <= jittered.backoff(3) <= 4 for _ in range(50))


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = 1_800_000_000.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "7"}), now=now) == 7
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": date}), now=now) == pytest.approx(30)
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"}), now=now) is None
    assert retry_after_seconds(httpx.Headers(), now=now) is None


async def test_the_async_client_follows_the_same_policy():
    script = Script(refused(503, "0"), httpx.ConnectError("refused"), httpx.Response(200, json=JOB))
    async with AsyncClient("http://api", "key", retry=FAST, transport=httpx.MockTransport(script)) as api:
        job = await api.get(JOB["job_id"])
    assert job.state == "running"
    assert len(script.requests) == 3


def test_wait_polls_the_job_when_its_event_stream_is_refused():
    states = iter(["running", "running", "succeeded"])
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/events"):
            return refused(429, "3600")  # too many open streams: not worth waiting for
        return httpx.Response(200, json={**JOB, "state": next(states)})

    with Client("http://api", "key", retry=FAST, transport=httpx.MockTransport(answer)) as api:
        job = api.wait(JOB["job_id"], timeout=10, poll_interval=0.01)
    assert job.state == "succeeded"
    assert seen[0].endswith("/events")
    assert seen.count(f"/v1/jobs/{JOB['job_id']}") == 3


def test_wait_gives_up_at_its_timeout():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return refused(503, "3600")
        return httpx.Response(200, json=JOB)

    with (
        Client("http://api", "key", retry=FAST, transport=httpx.MockTransport(answer)) as api,
        pytest.raises(WaitTimeout),
    ):
        api.wait(JOB["job_id"], timeout=0.2, poll_interval=0.05)
