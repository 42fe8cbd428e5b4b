"""The pure rules of the limits: header syntax, overrides over defaults, route classes, CLI values, refusals."""

import argparse

import pytest

from pixtools_gateway.adapters.rate_limits import RateLimiter, Verdict
from pixtools_gateway.admin_limits import limit_value
from pixtools_gateway.early_refusals import RefusalMemory, route_class_of
from pixtools_gateway.handlers.limits import Limits, Overrides
from pixtools_gateway.limiting import Spent, rate_limit_headers

DEFAULTS = Limits(submissions_per_s=50, reads_per_s=100, streams=20, unfinished_jobs=10_000)


def test_headers_are_the_drafts_structured_fields():
    headers = rate_limit_headers(Spent("reads", Verdict(True, quota=200, window_s=2, remaining=73, reset_s=1)))
    assert headers == {"RateLimit-Policy": '"reads";q=200;w=2', "RateLimit": '"reads";r=73;t=1'}


def test_an_override_replaces_only_its_own_limit():
    assert Overrides(streams=3).applied_to(DEFAULTS) == Limits(50, 100, 3, 10_000)
    assert Overrides().applied_to(DEFAULTS) == DEFAULTS


@pytest.mark.parametrize(
    ("method", "path", "route_class"),
    [
        ("POST", "/v1/jobs", "submissions"),
        ("GET", "/v1/jobs/0b6e/outputs/1", "reads"),
        ("DELETE", "/v1/batches/0b6e", "reads"),
        ("GET", "/v1/jobs/0b6e/events", None),
        ("POST", "/v1/batches", None),
        ("GET", "/healthz", None),
    ],
)
def test_the_route_class_follows_method_and_path(method, path, route_class):
    assert route_class_of(method, path) == route_class


def test_limit_values_are_whole_numbers_or_default():
    assert limit_value("20") == 20
    assert limit_value("default") is None
    for bad in ("0", "-1", "2.5", "many", "1000001"):
        with pytest.raises(argparse.ArgumentTypeError):
            limit_value(bad)


def _scope(key: str, path: str = "/v1/jobs") -> dict[str, object]:
    return {"type": "http", "method": "GET", "path": path, "headers": [(b"authorization", f"Bearer {key}".encode())]}


def test_a_refusal_is_repeated_only_to_the_same_credentials_and_class():
    memory = RefusalMemory()
    memory.remember(_scope("key-a"), "reads", 2, '"reads";q=10;w=2', "spent")
    recalled = memory.recall(_scope("key-a", "/v1/batches/1"))
    assert recalled is not None
    assert recalled[0] == "reads"
    assert memory.recall(_scope("key-b")) is None
    assert memory.recall({**_scope("key-a"), "method": "POST"}) is None


def test_a_refusal_lapses_after_its_retry_after():
    memory = RefusalMemory()
    memory.remember(_scope("key-a"), "reads", 0, '"reads";q=10;w=2', "spent")
    assert memory.recall(_scope("key-a")) is None


async def test_the_in_process_window_allows_the_burst_then_refuses_and_charges_nothing_for_a_refusal():
    limiter = RateLimiter.connect(None, window_s=2, retry_s=5)
    verdicts = [await limiter.spend("tenant", "reads", rate=5) for _ in range(11)]
    assert [verdict.allowed for verdict in verdicts] == [True] * 10 + [False]
    assert verdicts[0].remaining == 9
    assert verdicts[-1].remaining == 0
    assert 1 <= verdicts[-1].reset_s <= 2
    other = await limiter.spend("other", "reads", rate=5, cost=10)
    assert other.allowed
    assert other.remaining == 0
