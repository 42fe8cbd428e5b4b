"""Settings every service shares, read from PIXTOOLS_* environment variables."""

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pixtools_platform.broker.retry import RetryPolicy


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string from the environment."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


def _valid_networks(value: list[str]) -> list[str]:
    for cidr in value:
        ipaddress.ip_network(cidr, strict=False)
    return value


FloatList = Annotated[list[float], NoDecode, BeforeValidator(_split_list)]
"""A list of numbers, from `1,2,3` or `[1, 2, 3]`."""

CidrList = Annotated[list[str], NoDecode, BeforeValidator(_split_list), AfterValidator(_valid_networks)]
"""A list of CIDR networks, from `10.0.0.0/8,127.0.0.0/8` or a JSON list."""


class CommonSettings(BaseSettings):
    """Broker, storage, telemetry and logging settings shared by every service."""

    model_config = SettingsConfigDict(env_prefix="PIXTOOLS_", env_nested_delimiter="__", extra="ignore")

    env: Literal["local", "test", "production"] = "local"
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    namespace: str = Field(default="pixtools", description="Prefix of every exchange and queue name.")
    blob_backend: Literal["local", "s3"] = "local"
    blob_dir: Path = Path("var/blobs")
    s3_bucket: str = "pixtools"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    log_level: str = "INFO"
    log_json: bool = True
    otel_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; traces are not exported when unset."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    prefetch: int = Field(default=8, ge=1, le=1000, description="Messages a consumer holds at once.")
    bulk_prefetch: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Messages a stage holds at once from its bulk lane (batch items), so single jobs keep capacity.",
    )
    cancellation_catch_up_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a stage waits to read the cancellations stream to its end before it takes work.",
    )
    cancelled_jobs_limit: int = Field(
        default=100_000,
        ge=1,
        description="Cancelled job ids a stage remembers; the oldest are forgotten first.",
    )
    drain_seconds: float = Field(default=30.0, gt=0, description="How long shutdown waits for in-flight work.")
    announce_after_s: float = Field(
        default=0.25, ge=0, description="A step still running after this long publishes step.started."
    )
    ops_host: str = "0.0.0.0"
    ops_port: int = Field(default=0, description="Port of /healthz, /readyz and /metrics; 0 disables it.")

    @model_validator(mode="after")
    def _production_needs_shared_storage(self) -> "CommonSettings":
        if self.env == "production" and self.amqp_url.startswith("amqp://guest:guest@"):
            raise ValueError("PIXTOOLS_AMQP_URL uses the default guest account; set real broker credentials")
        return self
