"""Backoff tiers grow and jitter stays inside its tier."""

import random

from pixtools_platform.broker import RetryPolicy


def test_tiers_grow_exponentially() -> None:
    assert RetryPolicy(max_attempts=4, base_delay_s=1, factor=4).tiers_ms() == [1000, 4000, 16000]


def test_jittered_delay_stays_within_its_tier() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=2, factor=2, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(1, 5):
        tier, delay = policy.delay_ms(attempt, rng)
        assert tier == policy.tiers_ms()[attempt - 1]
        assert tier * 0.5 <= delay <= tier


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy(jitter=0.5)
    delays = {policy.delay_ms(1, random.Random(seed))[1] for seed in range(20)}
    assert len(delays) > 5
