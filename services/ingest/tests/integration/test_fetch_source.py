"""Fetching a job's source against a real HTTP server on loopback and a real blob store: store, retry, refuse."""

import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import pytest_asyncio

from pixtools_contracts import (
    Event,
    JobSubmitted,
    Pipeline,
    SourceFailed,
    SourceFetched,
    SourceRequested,
    StepRequested,
    original_key,
    plan,
)
from pixtools_ingest.adapters.fetching import SourceFetching, fetch_with_retries
from pixtools_ingest.errors import SourceUnreachable
from pixtools_ingest.handlers import Dependencies, fetch_source
from pixtools_platform.blobstore import BlobNotFound, BlobStore
from pixtools_platform.fetch import FetchLimits
from pixtools_platform.netguard import AddressPolicy
from pixtools_platform.stage import CpuPool

from .conftest import PNG, SourceServer

pytestmark = pytest.mark.integration

# Only the source server's own address is allowlisted: 127.0.0.2 (the canary) stays a private address.
FETCHING = SourceFetching(
    addresses=AddressPolicy.parse(["127.0.0.1/32"]),
    limits=FetchLimits(max_bytes=64 * 1024, connect_timeout_s=1.0, total_timeout_s=0.3),
    attempts=3,
    backoff_s=0.01,
)
PIPELINE = [{"parallel": [[{"op": "resize", "params": {"width": 16}}], [{"op": "metadata"}]]}]


class TypedStore:
    """A real blob store that also remembers the content type each key was stored with."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.content_types: dict[str, str] = {}

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self.inner.put(key, data, content_type)
        self.content_types[key] = content_type

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest_asyncio.fixture
async def run_cpu() -> AsyncIterator[Callable[..., Any]]:
    pool = CpuPool(1, "test-cpu")
    yield pool.run
    pool.close()


def _deps(store: Any, run_cpu: Callable[..., Any], fetching: SourceFetching = FETCHING, **extra: Any) -> Dependencies:
    async def announce(event: Event) -> None:
        raise AssertionError(f"fetching a source announces nothing, got {event.type}")

    values: dict[str, Any] = {"max_pixels": 50_000_000} | extra
    return Dependencies(blobs=store, run_cpu=run_cpu, announce=announce, fetching=fetching, **values)


def _request(url: str, lane: str = "interactive") -> SourceRequested:
    return SourceRequested(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="corr-source",
        producer="gateway",
        url=url,
        pipeline=Pipeline.model_validate(PIPELINE),
        remaining=plan(Pipeline.model_validate(PIPELINE)),
        lane=lane,
    )


def _failure(events: Sequence[Event]) -> SourceFailed:
    [failed] = events
    assert isinstance(failed, SourceFailed)
    return failed


async def _assert_nothing_stored(store: BlobStore, request: SourceRequested) -> None:
    with pytest.raises(BlobNotFound):
        await store.get(original_key(request.tenant_id, request.job_id))


@pytest.fixture(params=["local_store", "s3_store"])
def any_store(request: pytest.FixtureRequest) -> TypedStore:
    """Each real blob store in turn."""
    return TypedStore(request.getfixturevalue(request.param))


async def test_good_image_is_stored_as_the_original_and_starts_every_first_step(
    source_server: SourceServer, run_cpu, any_store: TypedStore
):
    store = any_store
    source = _request(source_server.url("/image.png"))
    *following, submitted, fetched = await fetch_source(source, _deps(store, run_cpu))
    key = original_key(source.tenant_id, source.job_id)
    assert isinstance(fetched, SourceFetched)
    assert await store.get(key) == PNG
    assert store.content_types == {key: "image/png"}
    original = fetched.input
    assert (original.key, original.content_type, original.bytes) == (key, "image/png", len(PNG))
    assert (original.sha256, original.width, original.height) == (hashlib.sha256(PNG).hexdigest(), 32, 24)
    assert (fetched.url, fetched.final_url, fetched.attempts) == (source.url, source.url, 1)
    assert (fetched.job_id, fetched.correlation_id, fetched.producer) == (source.job_id, "corr-source", "ingest")
    assert all(isinstance(step, StepRequested) for step in following)
    assert [(step.step.id, step.service, step.input) for step in following] == [  # type: ignore[attr-defined]
        ("0.0.0", "ingest", original),
        ("0.1.0", "ingest", original),
    ]
    assert {step.routing_key() for step in following} == {"step.requested.v1.ingest"}
    assert isinstance(submitted, JobSubmitted)
    assert (submitted.input, submitted.pipeline, submitted.step_count, submitted.leaf_count) == (
        original,
        source.pipeline,
        2,
        2,
    )
    assert (submitted.job_id, submitted.correlation_id) == (source.job_id, "corr-source")


async def test_bulk_lane_requests_its_first_steps_in_the_bulk_lane(source_server: SourceServer, local_store, run_cpu):
    source = _request(source_server.url("/image.png"), "bulk")
    *following, _, fetched = await fetch_source(source, _deps(local_store, run_cpu))
    assert isinstance(fetched, SourceFetched)
    assert [step.lane for step in following] == ["bulk", "bulk"]  # type: ignore[attr-defined]
    assert {step.routing_key() for step in following} == {"step.requested.v1.ingest.bulk"}


async def test_original_is_stored_with_the_type_its_bytes_show_not_the_declared_one(
    source_server: SourceServer, local_store, run_cpu
):
    store = TypedStore(local_store)
    source = _request(source_server.url("/mislabelled.jpg"))
    *_, fetched = await fetch_source(source, _deps(store, run_cpu))
    assert isinstance(fetched, SourceFetched)
    assert fetched.input.content_type == "image/png"
    assert store.content_types == {fetched.input.key: "image/png"}


async def test_redirect_is_followed_and_the_final_url_reported(source_server: SourceServer, local_store, run_cpu):
    *_, fetched = await fetch_source(_request(source_server.url("/moved")), _deps(local_store, run_cpu))
    assert isinstance(fetched, SourceFetched)
    assert fetched.final_url == source_server.url("/image.png")


@pytest.mark.parametrize("failures", [1, 2])
async def test_unavailable_source_that_recovers_is_fetched_after_retries(
    source_server: SourceServer, local_store, run_cpu, failures: int
):
    source_server.failures_before_recovery = failures
    source = _request(source_server.url("/recovering"))
    *following, _, fetched = await fetch_source(source, _deps(local_store, run_cpu))
    assert isinstance(fetched, SourceFetched)
    assert fetched.attempts == failures + 1 == source_server.requests["/recovering"]
    assert await local_store.get(fetched.input.key) == PNG
    assert len(following) == 2


async def test_source_still_unavailable_fails_after_exactly_three_attempts(
    source_server: SourceServer, local_store, run_cpu
):
    source = _request(source_server.url("/down"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu)))
    assert (failed.error.code, failed.attempts) == ("fetch.http_5xx", 3)
    assert source_server.requests["/down"] == 3
    assert (failed.url, failed.job_id, failed.producer) == (source.url, source.job_id, "ingest")
    await _assert_nothing_stored(local_store, source)


async def test_configured_attempts_bound_the_retries(source_server: SourceServer, local_store, run_cpu):
    fetching = SourceFetching(addresses=FETCHING.addresses, limits=FETCHING.limits, attempts=1, backoff_s=0.01)
    failed = _failure(await fetch_source(_request(source_server.url("/down")), _deps(local_store, run_cpu, fetching)))
    assert (failed.error.code, failed.attempts, source_server.requests["/down"]) == ("fetch.http_5xx", 1, 1)


async def test_missing_source_fails_at_once_with_a_client_error(source_server: SourceServer, local_store, run_cpu):
    source = _request(source_server.url("/gone.png"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu)))
    assert (failed.error.code, failed.attempts, source_server.requests["/gone.png"]) == ("fetch.http_4xx", 1, 1)
    assert "404" in failed.error.message
    await _assert_nothing_stored(local_store, source)


async def test_html_page_fails_as_not_an_image_without_retrying(source_server: SourceServer, local_store, run_cpu):
    source = _request(source_server.url("/page.html"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu)))
    assert (failed.error.code, failed.attempts, source_server.requests["/page.html"]) == ("fetch.not_an_image", 1, 1)
    assert "text/html" in failed.error.message
    await _assert_nothing_stored(local_store, source)


async def test_body_over_the_byte_cap_fails_at_once_as_too_large(source_server: SourceServer, local_store, run_cpu):
    source = _request(source_server.url("/huge"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu)))
    assert (failed.error.code, failed.attempts, source_server.requests["/huge"]) == ("fetch.too_large", 1, 1)
    await _assert_nothing_stored(local_store, source)


async def test_image_over_the_pixel_cap_fails_as_too_large(source_server: SourceServer, local_store, run_cpu):
    source = _request(source_server.url("/image.png"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu, max_pixels=32 * 24 - 1)))
    assert (failed.error.code, failed.attempts) == ("image.too_large", 1)
    await _assert_nothing_stored(local_store, source)


async def test_redirect_to_a_private_address_is_blocked_before_connecting(
    source_server: SourceServer, canary, local_store, run_cpu
):
    _, connections = canary
    source = _request(source_server.url("/to-private"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu)))
    assert (failed.error.code, failed.attempts, source_server.requests["/to-private"]) == ("fetch.blocked", 1, 1)
    assert connections == [], "the blocked address was reached"
    await _assert_nothing_stored(local_store, source)


async def test_private_address_is_blocked_without_an_allowlist(source_server: SourceServer, local_store, run_cpu):
    fetching = SourceFetching(addresses=AddressPolicy(), limits=FETCHING.limits, attempts=3, backoff_s=0.01)
    source = _request(source_server.url("/image.png"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu, fetching)))
    assert (failed.error.code, failed.attempts) == ("fetch.blocked", 1)
    assert sum(source_server.requests.values()) == 0


async def test_truncated_body_is_retried_then_fails_as_a_broken_connection(
    source_server: SourceServer, local_store, run_cpu
):
    source = _request(source_server.url("/truncated"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu)))
    assert (failed.error.code, failed.attempts, source_server.requests["/truncated"]) == ("fetch.connection", 3, 3)
    await _assert_nothing_stored(local_store, source)


async def test_slow_source_times_out_on_every_attempt(source_server: SourceServer, local_store, run_cpu):
    source = _request(source_server.url("/slow"))
    failed = _failure(await fetch_source(source, _deps(local_store, run_cpu)))
    assert (failed.error.code, failed.attempts, source_server.requests["/slow"]) == ("fetch.timeout", 3, 3)
    await _assert_nothing_stored(local_store, source)


async def test_retries_wait_exponentially_longer_with_jitter(source_server: SourceServer):
    waited: list[float] = []

    async def record(seconds: float) -> None:
        waited.append(seconds)

    fetching = SourceFetching(addresses=FETCHING.addresses, limits=FETCHING.limits, backoff_s=1.0, jitter=0.5)
    with pytest.raises(SourceUnreachable) as caught:
        await fetch_with_retries(source_server.url("/down"), fetching, sleep=record, rng=random.Random(7))
    draws = random.Random(7)
    assert waited == [fetching.delay_s(1, draws.random()), fetching.delay_s(2, draws.random())]
    assert 0.5 < waited[0] <= 1.0 < waited[1] <= 2.0
    assert (caught.value.code, caught.value.attempts) == ("fetch.http_5xx", 3)
