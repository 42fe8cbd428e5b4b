"""Gateway settings."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from pixtools_platform.settings import CidrList, CommonSettings

DEFAULT_DEV_KEY = "pixtools-dev-key"


class GatewaySettings(CommonSettings):
    """Settings of the HTTP gateway (PIXTOOLS_* variables)."""

    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/pixtools"
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1, description="Largest upload, enforced while streaming."
    )
    max_pixels: int = Field(default=50_000_000, ge=1, description="Largest decoded image accepted, in pixels.")
    max_batch_upload_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1, description="Largest multipart batch request (all files), while streaming."
    )
    dev_api_key: str = Field(default=DEFAULT_DEV_KEY, description="Key of the local development tenant.")
    seed_dev_tenant: bool = Field(default=False, description="Create the development tenant at start-up.")
    relay_enabled: bool = Field(default=True, description="Run the outbox relay in this process.")
    relay_poll_s: float = Field(
        default=2.0,
        gt=0,
        description="How often the outbox sweep looks for rows a crashed writer left unpublished; it takes only rows "
        "older than its 10 s grace period, so polling more often only costs queries.",
    )
    presign_expiry_s: int = Field(
        default=3600, ge=60, description="Lifetime of output links: S3 presigned URLs or the gateway's signed links."
    )
    output_link_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key of the gateway's signed output links (local blob store), at least 32 "
        "characters, the same on every replica; random per process when unset, which production refuses.",
    )
    prefer_wait_max_s: int = Field(
        default=60, ge=0, description="Longest `Prefer: wait=N` a submission honours; larger waits are cut to it."
    )
    secret_grace_s: int = Field(default=24 * 3600, description="How long a rotated webhook secret still signs.")
    webhook_allow_cidrs: CidrList = Field(default_factory=list, description="Private networks webhooks may reach.")
    auth_cache_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a verified key is remembered; revocation and expiry still end it at once.",
    )
    key_last_used_interval_s: float = Field(
        default=60.0, gt=0, description="How often, at most, a key's `last_used_at` is written."
    )
    token_signing_key: SecretStr | None = Field(
        default=None, description="PEM Ed25519 private key that signs access tokens."
    )
    token_signing_key_file: Path | None = Field(
        default=None, description="A file holding that PEM key, instead of the key itself."
    )
    token_previous_public_keys: list[str] = Field(
        default_factory=list,
        description="PEM public keys of earlier signing keys, published in the JWKS until their tokens expire.",
    )
    token_issuer: str = Field(default="pixtools", description="The `iss` of access tokens.")
    token_audience: str = Field(default="pixtools-api", description="The `aud` of access tokens.")
    access_token_ttl_s: int = Field(default=900, ge=1, le=24 * 3600, description="Lifetime of an access token.")
    refresh_token_ttl_s: int = Field(
        default=30 * 24 * 3600, ge=60, description="Lifetime of a refresh token that has not been used."
    )
    refresh_family_lifetime_s: int = Field(
        default=30 * 24 * 3600,
        ge=1,
        description="Absolute lifetime of a session's refresh tokens from its first: a refresh past it answers 401 "
        "and ends the session, however often it was refreshed.",
    )
    max_header_count: int = Field(default=100, ge=1, description="Most request headers; more answers 431.")
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest total of request header names and values; more answers 431."
    )
    max_target_bytes: int = Field(default=8 * 1024, ge=256, description="Longest path and query; more answers 414.")
    keep_alive_s: float = Field(default=5.0, gt=0, description="How long an idle keep-alive connection is kept.")
    redis_url: str | None = Field(
        default=None,
        description="Redis shared by every replica for rate limits and open streams, e.g. redis://localhost:6379/0; "
        "counted in this process when unset.",
    )
    submissions_per_s: int = Field(default=50, ge=1, description="Jobs a tenant may submit per second.")
    reads_per_s: int = Field(default=100, ge=1, description="Other requests a tenant may send per second.")
    rate_window_s: int = Field(
        default=2, ge=1, description="Rates are counted over this moving window: bursts reach rate × window."
    )
    streams_per_tenant: int = Field(default=20, ge=1, description="Progress streams a tenant may hold open.")
    unfinished_jobs_quota: int = Field(default=10_000, ge=1, description="Jobs a tenant may have unfinished.")
    limits_cache_s: float = Field(default=5.0, ge=0, description="How long a tenant's limit overrides are cached.")
    quota_cache_s: float = Field(default=2.0, ge=0, description="How long a tenant's unfinished count is cached.")
    stream_slot_ttl_s: float = Field(
        default=30.0, gt=0, description="A stream slot a crashed replica held lapses after this long."
    )
    redis_retry_s: float = Field(
        default=5.0, ge=0, description="After a Redis failure, limits are counted in this process for this long."
    )
    requests_in_progress_per_key: int = Field(
        default=2,
        ge=1,
        description="Requests of one key or token in progress at once; more wait their turn (streams excepted).",
    )
    refusal_hold_s: float = Field(
        default=1.0,
        ge=0,
        description="A key refused with 429 that sends again before Retry-After has its refusal held this long at "
        "most (until Retry-After passes, and a moment of refusal_hold_spread_s after it) before the answer; 0 "
        "answers at once.",
    )
    refusal_hold_spread_s: float = Field(
        default=0.5,
        ge=0,
        description="Holds that reach Retry-After end at moments spread over this long after it, so that one "
        "client's held connections do not all send again at once.",
    )
    refusals_held_max: int = Field(
        default=1000, ge=0, description="Most refusals held at once per gateway process; past it they answer at once."
    )
    http_implementation: Literal["httptools", "h11"] = Field(
        default="httptools",
        description="uvicorn's HTTP parser; both time out a slow head (request_head_timeout_s).",
    )
    request_head_timeout_s: float = Field(
        default=10.0, gt=0, description="Time to send a request's line and headers; the connection closes after."
    )
    request_body_timeout_s: float = Field(
        default=60.0, gt=0, description="Time to send a request's body once its head arrived; 408 after."
    )
    rabbitmq_management_url: str | None = Field(
        default=None,
        description="RabbitMQ management API with credentials, e.g. http://guest:guest@localhost:15672; "
        "queue statistics use AMQP (no unacked counts) when unset.",
    )

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> "GatewaySettings":
        if self.env == "production" and self.seed_dev_tenant:
            raise ValueError("the development tenant cannot be seeded in production")
        if self.seed_dev_tenant and self.env != "local" and self.dev_api_key == DEFAULT_DEV_KEY:
            raise ValueError("set PIXTOOLS_DEV_API_KEY: the default key is for local runs only")
        if self.token_signing_key is not None and self.token_signing_key_file is not None:
            raise ValueError("set PIXTOOLS_TOKEN_SIGNING_KEY or PIXTOOLS_TOKEN_SIGNING_KEY_FILE, not both")
        if self.env == "production" and self.token_signing_key is None and self.token_signing_key_file is None:
            raise ValueError(
                "set PIXTOOLS_TOKEN_SIGNING_KEY or PIXTOOLS_TOKEN_SIGNING_KEY_FILE: production does not sign "
                "access tokens with a key that a restart would lose"
            )
        secret = self.output_link_secret
        if secret is None and self.env == "production" and self.blob_backend == "local":
            raise ValueError("set PIXTOOLS_OUTPUT_LINK_SECRET: production signs output links with a key of its own")
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("PIXTOOLS_OUTPUT_LINK_SECRET must be at least 32 characters")
        return self
