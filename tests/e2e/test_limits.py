"""Per-tenant limits through real gateway processes, real Postgres and real Redis.

Each test starts its gateways with small limits, so a handful of requests crosses them; tenants are new in
every test, so their counters in the shared Redis start empty.
"""

import concurrent.futures
import contextlib
import os
import re
import time

import httpx
import pytest
import redis

from .conftest import admin, new_tenant, raw_connection
from .harness import free_port

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("PIXTOOLS_TEST_REDIS_URL", "redis://localhost:6379/0")
URL_JOB = {"source_url": "https://limits.example/cat.jpg", "pipeline": [{"op": "metadata"}]}


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The real Redis the tests share; a missing one fails the tests, it does not skip them."""
    redis.Redis.from_url(REDIS_URL).ping()
    return REDIS_URL


def reads(base: str, headers: dict[str, str], count: int, timeout_s: float = 10) -> list[httpx.Response]:
    """`count` reads of the tenant's job list, sent back to back."""
    with httpx.Client(base_url=base, headers=headers, timeout=timeout_s) as client:
        return [client.get("/v1/jobs") for _ in range(count)]


def test_a_tenant_over_its_read_rate_gets_429_with_headers_while_another_is_served(gateways, database_url, redis_url):
    base = gateways.start(PIXTOOLS_REDIS_URL=redis_url, PIXTOOLS_READS_PER_S="5")
    _, busy = new_tenant(database_url)
    _, quiet = new_tenant(database_url)

    answers = reads(base, busy, 12)
    other = reads(base, quiet, 1)[0]

    assert [answer.status_code for answer in answers[:10]] == [200] * 10
    assert answers[0].headers["RateLimit-Policy"] == '"reads";q=10;w=2'
    assert re.fullmatch(r'"reads";r=9;t=[12]', answers[0].headers["RateLimit"])
    refused = answers[10]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "https://pixtools.dev/problems/rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert refused.headers["RateLimit-Policy"] == '"reads";q=10;w=2'
    assert re.fullmatch(r'"reads";r=0;t=[12]', refused.headers["RateLimit"])
    assert other.status_code == 200
    assert other.headers["RateLimit"].startswith('"reads";r=9;')


def test_the_limit_holds_across_two_gateways_sharing_redis(gateways, database_url, redis_url):
    # The 16 reads must all fall in one window for the count to be exact: a 10 s window (1/s, bursts of 10) leaves
    # room for a loaded machine, and no hold of repeated refusals.
    no_hold = {
        "PIXTOOLS_REDIS_URL": redis_url,
        "PIXTOOLS_READS_PER_S": "1",
        "PIXTOOLS_RATE_WINDOW_S": "10",
        "PIXTOOLS_REFUSAL_HOLD_S": "0",
    }
    first = gateways.start(**no_hold)
    second = gateways.start(**no_hold)
    _, tenant = new_tenant(database_url)

    answers = [answer for _ in range(4) for base in (first, second) for answer in reads(base, tenant, 2)]

    # 16 reads in well under the 2 s window, half through each gateway: 10 pass in all, not 10 per gateway.
    assert sum(answer.status_code == 200 for answer in answers) == 10
    assert sum(answer.status_code == 429 for answer in answers) == 6


def test_without_redis_each_gateway_counts_in_process(gateways, database_url):
    base = gateways.start(PIXTOOLS_READS_PER_S="5")
    _, tenant = new_tenant(database_url)

    statuses = [answer.status_code for answer in reads(base, tenant, 12)]

    assert statuses == [200] * 10 + [429] * 2


def test_batch_items_count_as_submissions(gateways, database_url, redis_url):
    base = gateways.start(PIXTOOLS_REDIS_URL=redis_url, PIXTOOLS_SUBMISSIONS_PER_S="10")
    _, tenant = new_tenant(database_url)

    def batch(size: int) -> httpx.Response:
        items = [{"url": f"https://limits.example/{os.urandom(4).hex()}.jpg"} for _ in range(size)]
        body = {"items": items, "pipeline": [{"op": "metadata"}]}
        return httpx.post(f"{base}/v1/batches", json=body, headers=tenant, timeout=10)

    fifteen = batch(15)
    assert fifteen.status_code == 202, fifteen.text
    assert fifteen.headers["RateLimit-Policy"] == '"submissions";q=20;w=2'
    assert fifteen.headers["RateLimit"].startswith('"submissions";r=5;')
    refused = batch(6)
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/rate-limited")
    assert batch(5).status_code == 202


def test_the_twenty_first_stream_is_refused_and_a_closed_stream_frees_its_slot(gateways, database_url, redis_url):
    base = gateways.start(PIXTOOLS_REDIS_URL=redis_url)
    _, tenant = new_tenant(database_url)
    with httpx.Client(base_url=base, headers=tenant, timeout=10) as client:
        job = client.post("/v1/jobs", json=URL_JOB).json()["job_id"]
        with contextlib.ExitStack() as streams:
            opened = [streams.enter_context(client.stream("GET", f"/v1/jobs/{job}/events")) for _ in range(20)]
            assert [stream.status_code for stream in opened] == [200] * 20

            refused = client.get(f"/v1/jobs/{job}/events")
            assert refused.status_code == 429
            assert refused.json()["type"].endswith("/rate-limited")
            assert "20 progress streams" in refused.json()["detail"]
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.headers["RateLimit-Policy"] == '"streams";q=20'
            assert refused.headers["RateLimit"] == f'"streams";r=0;t={refused.headers["Retry-After"]}'

            opened[0].close()
            deadline = time.monotonic() + 5
            while True:
                with client.stream("GET", f"/v1/jobs/{job}/events") as again:
                    if again.status_code == 200:
                        break
                assert time.monotonic() < deadline, "closing a stream did not free its slot"
                time.sleep(0.1)


def test_the_unfinished_jobs_quota_set_with_pixtools_admin_refuses_the_next_job(gateways, database_url, redis_url):
    name, tenant = new_tenant(database_url)
    set_quota = admin(database_url, "set-limits", name, "--unfinished-jobs", "3")
    assert set_quota.returncode == 0, set_quota.stderr
    assert "unfinished_jobs: 3 (own)" in set_quota.stdout
    assert "submissions_per_s: 50 (default)" in set_quota.stdout
    base = gateways.start(PIXTOOLS_REDIS_URL=redis_url)

    with httpx.Client(base_url=base, headers=tenant, timeout=10) as client:
        accepted = [client.post("/v1/jobs", json=URL_JOB).status_code for _ in range(3)]
        refused = client.post("/v1/jobs", json=URL_JOB)
        two_more = client.post(
            "/v1/batches",
            json={
                "items": [{"url": "https://limits.example/a.jpg"}, {"url": "https://limits.example/b.jpg"}],
                "pipeline": [{"op": "metadata"}],
            },
        )

    assert accepted == [202, 202, 202]
    assert refused.status_code == 429
    assert refused.json()["type"] == "https://pixtools.dev/problems/quota-exceeded"
    assert "quota of 3 unfinished jobs" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert two_more.status_code == 429
    assert two_more.json()["type"].endswith("/quota-exceeded")


def test_a_replayed_submission_at_the_unfinished_quota_gets_its_first_answer(gateways, database_url, redis_url):
    name, tenant = new_tenant(database_url)
    assert admin(database_url, "set-limits", name, "--unfinished-jobs", "2").returncode == 0
    base = gateways.start(PIXTOOLS_REDIS_URL=redis_url)
    batch_body = {"items": [{"url": "https://limits.example/replayed.jpg"}], "pipeline": [{"op": "metadata"}]}

    with httpx.Client(base_url=base, headers=tenant, timeout=10) as client:
        job = client.post("/v1/jobs", json=URL_JOB, headers={"Idempotency-Key": "job-once"})
        batch = client.post("/v1/batches", json=batch_body, headers={"Idempotency-Key": "batch-once"})
        new_job = client.post("/v1/jobs", json=URL_JOB)
        job_again = client.post("/v1/jobs", json=URL_JOB, headers={"Idempotency-Key": "job-once"})
        batch_again = client.post("/v1/batches", json=batch_body, headers={"Idempotency-Key": "batch-once"})
        new_key = client.post("/v1/jobs", json=URL_JOB, headers={"Idempotency-Key": "job-twice"})

    assert (job.status_code, batch.status_code) == (202, 202), (job.text, batch.text)
    assert new_job.status_code == 429
    assert new_job.json()["type"].endswith("/quota-exceeded")
    # At the quota, a replay adds no job: it answers as the first time did.
    assert job_again.status_code == 202, job_again.text
    assert job_again.json()["job_id"] == job.json()["job_id"]
    assert batch_again.status_code == 202, batch_again.text
    assert batch_again.json()["batch_id"] == batch.json()["batch_id"]
    assert new_key.status_code == 429
    assert new_key.json()["type"].endswith("/quota-exceeded")


def test_a_repeated_refusal_is_held_before_its_answer_and_the_holds_are_capped(gateways, database_url, redis_url):
    base = gateways.start(
        PIXTOOLS_REDIS_URL=redis_url,
        # 1/s over a 10 s window: the refusal holds for seconds, room enough for a loaded machine.
        PIXTOOLS_READS_PER_S="1",
        PIXTOOLS_RATE_WINDOW_S="10",
        PIXTOOLS_REFUSAL_HOLD_S="30",
        PIXTOOLS_REFUSALS_HELD_MAX="1",
    )
    _, tenant = new_tenant(database_url)
    answers = reads(base, tenant, 11)
    assert [answer.status_code for answer in answers] == [200] * 10 + [429]

    def held_now() -> float:
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        return float(re.findall(r"^pixtools_http_refusals_held (\S+)$", metrics, re.MULTILINE)[0])

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # Held until Retry-After (up to the 10 s window) and a moment of the spread after it.
        held = pool.submit(reads, base, tenant, 1, 30)
        deadline = time.monotonic() + 5
        while held_now() != 1:
            assert time.monotonic() < deadline, "the repeated refusal was not held"
            time.sleep(0.02)
        # The one place is taken: the next refusal is answered at once, while the first is still held.
        at_once = reads(base, tenant, 1)[0]
        still_held = not held.done()
        held_answer = held.result()[0]

    assert at_once.status_code == 429
    assert still_held
    for answer in (held_answer, at_once):
        assert answer.status_code == 429
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "https://pixtools.dev/problems/rate-limited"
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.headers["RateLimit-Policy"] == '"reads";q=10;w=10'
        assert re.fullmatch(r'"reads";r=0;t=\d+', answer.headers["RateLimit"])
    assert held_now() == 0


def test_a_key_has_two_requests_in_progress_by_default_its_third_waits_and_another_key_passes(
    gateways, database_url, redis_url
):
    base = gateways.start(PIXTOOLS_REDIS_URL=redis_url)
    _, uploader = new_tenant(database_url)
    _, other = new_tenant(database_url)
    # Two submissions whose bodies never finish arriving: each holds one of its key's places while it is read.
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Authorization: {uploader['Authorization']}\r\nContent-Length: 1000\r\n\r\n{{"
    )
    stalled = [raw_connection(base) for _ in range(2)]
    for connection in stalled:
        connection.sendall(head.encode())
    time.sleep(0.5)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        third = pool.submit(reads, base, uploader, 1)
        other_answer = reads(base, other, 1)[0]
        time.sleep(1.0)
        parked = not third.done()
        stalled.pop().close()  # one upload gone: its place goes to the parked read
        third_answer = third.result(timeout=10)[0]
    for connection in stalled:
        connection.close()

    assert other_answer.status_code == 200
    assert parked, "a third request of the key went ahead while two of its uploads were in progress"
    assert third_answer.status_code == 200


def test_a_reads_override_applies_to_a_running_gateway_within_its_cache(gateways, database_url, redis_url):
    name, tenant = new_tenant(database_url)
    base = gateways.start(PIXTOOLS_REDIS_URL=redis_url, PIXTOOLS_LIMITS_CACHE_S="0.5")
    assert reads(base, tenant, 1)[0].headers["RateLimit-Policy"] == '"reads";q=200;w=2'

    assert admin(database_url, "set-limits", name, "--reads-per-s", "2").returncode == 0
    time.sleep(0.6)
    statuses = [answer.status_code for answer in reads(base, tenant, 5)]

    # A new quota is a new window (the limiter keys its counts by the limit): 4 pass in it, the 5th waits.
    assert statuses == [200, 200, 200, 200, 429]
    shown = admin(database_url, "show-limits", name)
    assert "reads_per_s: 2 (own)" in shown.stdout
    assert admin(database_url, "set-limits", name, "--reads-per-s", "default").returncode == 0
    assert "reads_per_s: 100 (default)" in admin(database_url, "show-limits", name).stdout


def test_pixtools_admin_refuses_bad_limits_with_exit_2(database_url):
    name, _ = new_tenant(database_url)
    zero = admin(database_url, "set-limits", name, "--streams", "0")
    assert zero.returncode == 2
    assert "'0' is not a whole number from 1 to 1000000, or 'default'" in zero.stderr
    nothing = admin(database_url, "set-limits", name)
    assert nothing.returncode == 2
    unknown = admin(database_url, "set-limits", "no-such-tenant", "--streams", "3")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "pixtools-admin: no tenant named 'no-such-tenant'"


def test_with_redis_unreachable_requests_are_served_counted_in_process_and_the_failure_is_counted(
    gateways, database_url
):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    base = gateways.start(PIXTOOLS_REDIS_URL=closed, PIXTOOLS_READS_PER_S="5")
    _, tenant = new_tenant(database_url)

    statuses = [answer.status_code for answer in reads(base, tenant, 12)]
    with httpx.Client(base_url=base, headers=tenant, timeout=10) as client:
        job = client.post("/v1/jobs", json=URL_JOB)
        with client.stream("GET", f"/v1/jobs/{job.json()['job_id']}/events") as stream:
            stream_status = stream.status_code
    metrics = httpx.get(f"{base}/metrics").text

    # No 500 and no refusal within the limit: the gateway counts in its own process until Redis is back.
    assert statuses == [200] * 10 + [429] * 2
    assert job.status_code == 202
    assert stream_status == 200
    failures = re.findall(r'pixtools_rate_limiter_failures_total\{check="rate"\} (\S+)', metrics)
    assert failures
    assert float(failures[0]) >= 1
    assert "rate limiter storage unreachable" in gateways.stacks[0].log("gateway")
