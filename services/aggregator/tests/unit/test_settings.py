"""Settings read from the environment the way the deployment files write them."""

import pytest
from pydantic import ValidationError

from pixtools_aggregator.settings import AggregatorSettings


def test_lists_accept_comma_separated_environment_values(monkeypatch):
    monkeypatch.setenv("PIXTOOLS_WEBHOOK_ALLOW_CIDRS", "172.16.0.0/12,192.168.0.0/16")
    monkeypatch.setenv("PIXTOOLS_WEBHOOK_RETRY_SCHEDULE", "0.5, 2, 10")
    settings = AggregatorSettings()
    assert settings.webhook_allow_cidrs == ["172.16.0.0/12", "192.168.0.0/16"]
    assert settings.webhook_retry_schedule == [0.5, 2.0, 10.0]


def test_empty_allowlist_means_public_addresses_only(monkeypatch):
    monkeypatch.setenv("PIXTOOLS_WEBHOOK_ALLOW_CIDRS", "")
    settings = AggregatorSettings()
    assert settings.webhook_allow_cidrs == []
    assert settings.ops_port == 9102


def test_invalid_network_is_refused():
    with pytest.raises(ValidationError):
        AggregatorSettings(webhook_allow_cidrs=["not-a-network"])


def test_lease_must_outlast_one_attempt():
    with pytest.raises(ValidationError):
        AggregatorSettings(webhook_timeout_s=30, webhook_lease_s=10)
