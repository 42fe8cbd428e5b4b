"""The aggregator's settings, read from PIXTOOLS_* environment variables."""

import ipaddress
import json
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from pixtools_platform.settings import CommonSettings

DEFAULT_RETRY_SCHEDULE = [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0]


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string, so `PIXTOOLS_WEBHOOK_ALLOW_CIDRS=a,b` works."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


class AggregatorSettings(CommonSettings):
    """Database, webhook delivery and ops settings of the aggregator."""

    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/pixtools"
    ops_port: int = Field(default=9102, description="Port of /healthz, /readyz and /metrics; 0 disables it.")
    outbox_poll_s: float = Field(default=0.5, gt=0, description="How often the outbox relay looks for rows.")
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
        min_length=1,
        description="Seconds to wait before each retry; a delivery gets len(schedule) + 1 attempts.",
    )
    webhook_jitter: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Fraction of each retry delay drawn at random."
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Whole-request deadline of one attempt.")
    webhook_breaker_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open an endpoint.")
    webhook_breaker_cooldown_s: float = Field(default=300.0, gt=0, description="How long an open endpoint rests.")
    webhook_allow_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Private networks webhooks may reach anyway (the local stack: 127.0.0.0/8)."
    )
    webhook_poll_s: float = Field(default=1.0, gt=0, description="How often the dispatcher looks for due deliveries.")
    webhook_batch: int = Field(default=50, ge=1, description="Deliveries claimed at once.")
    webhook_lease_s: float = Field(
        default=60.0, gt=0, description="How long a claimed delivery is hidden from other replicas while it is sent."
    )

    @field_validator("webhook_retry_schedule", "webhook_allow_cidrs", mode="before")
    @classmethod
    def _lists_from_env(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _positive_delays(cls, value: list[float]) -> list[float]:
        if any(delay <= 0 for delay in value):
            raise ValueError("every retry delay must be positive")
        return value

    @field_validator("webhook_allow_cidrs")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value

    @model_validator(mode="after")
    def _lease_outlasts_attempt(self) -> "AggregatorSettings":
        # A lease shorter than an attempt would let another replica send the same delivery concurrently.
        if self.webhook_lease_s <= self.webhook_timeout_s:
            raise ValueError("PIXTOOLS_WEBHOOK_LEASE_S must exceed PIXTOOLS_WEBHOOK_TIMEOUT_S")
        return self
