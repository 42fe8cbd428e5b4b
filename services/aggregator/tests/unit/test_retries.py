"""The webhook retry schedule, its jitter bounds, the circuit breaker and what each response means."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from pixtools_aggregator.dispatcher import decide
from pixtools_aggregator.ports import EndpointState, SendResult
from pixtools_aggregator.webhooks import BreakerPolicy, RetrySchedule

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_jittered_delays_stay_within_their_bounds():
    schedule = RetrySchedule((5.0, 30.0, 120.0), jitter=0.25)
    rng = random.Random(7)
    for attempts, nominal in enumerate(schedule.delays_s, start=1):
        delays = [schedule.delay_after(attempts, rng) for _ in range(500)]
        seconds = [delay.total_seconds() for delay in delays if delay is not None]
        assert len(seconds) == 500
        assert min(seconds) >= nominal * 0.75
        assert max(seconds) <= nominal
        # Jitter really spreads the delays instead of returning the nominal value.
        assert max(seconds) - min(seconds) > nominal * 0.2


def test_without_jitter_the_schedule_is_exact_and_then_exhausted():
    schedule = RetrySchedule((0.1, 0.3), jitter=0.0)
    rng = random.Random(1)
    assert schedule.max_attempts == 3
    assert schedule.delay_after(1, rng) == timedelta(seconds=0.1)
    assert schedule.delay_after(2, rng) == timedelta(seconds=0.3)
    assert schedule.delay_after(3, rng) is None


def test_breaker_opens_after_threshold_failures_and_a_success_closes_it():
    breaker = BreakerPolicy(threshold=3, cooldown=timedelta(minutes=5))
    state = EndpointState()
    for _ in range(2):
        state = breaker.after(state, "failure", NOW)
    assert state.open_until is None
    state = breaker.after(state, "failure", NOW)
    assert state.open_until == NOW + timedelta(minutes=5)
    state = breaker.after(state, "success", NOW)
    assert state == EndpointState(consecutive_failures=0, open_until=None)


def test_gone_disables_the_endpoint():
    breaker = BreakerPolicy(threshold=3, cooldown=timedelta(minutes=5))
    assert breaker.after(EndpointState(), "gone", NOW).disabled_at == NOW


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_is_delivered(status):
    attempt = decide(
        SendResult(status=status), attempts=0, now=NOW, schedule=RetrySchedule((1.0,)), rng=random.Random()
    )
    assert (attempt.state, attempt.endpoint_effect, attempt.counted) == ("delivered", "success", True)


@pytest.mark.parametrize(
    "result", [SendResult(status=302, error="redirect"), SendResult(status=500), SendResult(error="timeout")]
)
def test_redirects_errors_and_timeouts_are_retried_per_the_schedule(result):
    schedule = RetrySchedule((2.0, 8.0))
    attempt = decide(result, attempts=1, now=NOW, schedule=schedule, rng=random.Random())
    assert (attempt.state, attempt.outcome, attempt.endpoint_effect) == ("pending", "retry", "failure")
    assert attempt.next_attempt_at == NOW + timedelta(seconds=8)


def test_failure_after_the_last_scheduled_attempt_fails_the_delivery():
    attempt = decide(
        SendResult(status=503), attempts=2, now=NOW, schedule=RetrySchedule((2.0, 8.0)), rng=random.Random()
    )
    assert (attempt.state, attempt.outcome) == ("failed", "exhausted")


def test_410_disables_and_a_blocked_target_does_not_count_against_the_endpoint():
    schedule = RetrySchedule((1.0,))
    gone = decide(SendResult(status=410), attempts=0, now=NOW, schedule=schedule, rng=random.Random())
    assert (gone.state, gone.endpoint_effect) == ("disabled", "gone")
    blocked = decide(
        SendResult(blocked=True, error="not public"), attempts=0, now=NOW, schedule=schedule, rng=random.Random()
    )
    assert (blocked.state, blocked.endpoint_effect, blocked.error) == ("blocked", None, "not public")
