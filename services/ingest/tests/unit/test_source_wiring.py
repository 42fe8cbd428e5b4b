"""Source fetching as configured and wired: settings, the address policy they build, routing, and giving up."""

import ipaddress
import uuid

import pytest
from pydantic import ValidationError

from pixtools_contracts import (
    ObjectRef,
    Pipeline,
    SourceFailed,
    SourceRequested,
    StepFailed,
    StepRequested,
    first_steps,
    plan,
)
from pixtools_ingest import routing
from pixtools_ingest.adapters.fetching import SourceFetching
from pixtools_ingest.app import source_fetching
from pixtools_ingest.handlers import Dependencies
from pixtools_ingest.settings import IngestSettings
from pixtools_platform.netguard import BlockedDestination

PIPELINE = Pipeline.model_validate([{"op": "metadata"}])
IDS = {"job_id": uuid.uuid4(), "tenant_id": uuid.uuid4(), "correlation_id": "corr", "producer": "gateway"}


def _source_request(url: str = "http://images.example/cat.png") -> SourceRequested:
    return SourceRequested(**IDS, url=url, pipeline=PIPELINE, remaining=plan(PIPELINE))


def test_defaults_fetch_only_public_addresses_on_web_ports_within_limits():
    fetching = source_fetching(IngestSettings())
    assert fetching.addresses.allow_cidrs == ()
    assert fetching.addresses.allowed_ports == frozenset({80, 443})
    assert (fetching.limits.max_bytes, fetching.limits.max_redirects) == (25 * 1024 * 1024, 3)
    assert (fetching.attempts, fetching.backoff_s) == (3, 0.5)


def test_environment_allowlist_opens_its_networks_on_any_port_and_nothing_else(monkeypatch):
    monkeypatch.setenv("PIXTOOLS_FETCH_ALLOW_CIDRS", '["127.0.0.0/8"]')
    monkeypatch.setenv("PIXTOOLS_FETCH_ALLOW_PORTS", "[80, 443, 8080]")
    monkeypatch.setenv("PIXTOOLS_FETCH_TOTAL_TIMEOUT_S", "12")
    policy = source_fetching(IngestSettings()).addresses
    loopback, private = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")
    policy.check_address(loopback)
    policy.check_port(loopback, 9000)
    with pytest.raises(BlockedDestination):
        policy.check_address(private)
    with pytest.raises(BlockedDestination):
        policy.check_port(ipaddress.ip_address("93.184.216.34"), 9000)
    policy.check_port(ipaddress.ip_address("93.184.216.34"), 8080)
    assert source_fetching(IngestSettings()).limits.total_timeout_s == 12


def test_comma_separated_allowlist_is_accepted(monkeypatch):
    monkeypatch.setenv("PIXTOOLS_FETCH_ALLOW_CIDRS", "127.0.0.0/8, 192.168.0.0/16")
    assert IngestSettings().fetch_allow_cidrs == ["127.0.0.0/8", "192.168.0.0/16"]


@pytest.mark.parametrize(
    "override",
    [
        {"fetch_allow_cidrs": ["not-a-network"]},
        {"fetch_allow_ports": [0]},
        {"fetch_allow_ports": []},
        {"fetch_attempts": 0},
        {"fetch_total_timeout_s": 0},
    ],
)
def test_invalid_fetch_settings_are_refused(override):
    with pytest.raises(ValidationError):
        IngestSettings(**override)


def test_backoff_doubles_per_failure_and_jitter_only_shortens_it():
    fetching = SourceFetching(backoff_s=0.5, jitter=0.5)
    assert [fetching.delay_s(failed, 0.0) for failed in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert fetching.delay_s(2, 0.999) == pytest.approx(0.5, abs=0.001)


def test_ingest_consumes_source_requests_and_hands_them_to_the_fetch_handler():
    deps = Dependencies(blobs=None, run_cpu=None, announce=None, max_pixels=1)  # type: ignore[arg-type]
    stage = routing.stage(deps)
    assert _source_request().routing_key() in stage.routing_keys
    assert "step.requested.v1.ingest" in stage.routing_keys
    assert {"step.requested.v1", "source.requested.v1"} <= set(stage.routes)


async def test_a_url_that_is_not_http_fails_the_source_instead_of_raising():
    deps = Dependencies(blobs=None, run_cpu=None, announce=None, max_pixels=1)  # type: ignore[arg-type]
    handle = routing.stage(deps).routes["source.requested.v1"]
    [failed] = await handle(_source_request("file:///etc/passwd"))
    assert isinstance(failed, SourceFailed)
    assert (failed.error.code, failed.attempts, failed.producer) == ("fetch.blocked", 1, "ingest")


async def test_a_dead_lettered_source_request_fails_its_job():
    request = _source_request()
    [failed] = await routing.on_exhausted(request, "delivered 5 times without being settled")
    assert isinstance(failed, SourceFailed)
    assert (failed.job_id, failed.url, failed.error.code) == (request.job_id, request.url, "fetch.gave_up")
    assert failed.error.message == "delivered 5 times without being settled"


async def test_a_dead_lettered_step_request_still_fails_its_step():
    [(step, rest)] = first_steps(plan(PIPELINE))
    image = ObjectRef(key="k", content_type="image/png", bytes=1, sha256="0" * 64)
    request = StepRequested(**IDS, service="ingest", input=image, step=step, remaining=rest)
    [failed] = await routing.on_exhausted(request, "poison")
    assert isinstance(failed, StepFailed)
    assert (failed.step_id, failed.error.code) == ("0", "step.gave_up")
