"""Gateway settings."""

from pydantic import Field, model_validator

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
    relay_poll_s: float = 0.5
    presign_expiry_s: int = 3600
    secret_grace_s: int = Field(default=24 * 3600, description="How long a rotated webhook secret still signs.")
    webhook_allow_cidrs: CidrList = Field(default_factory=list, description="Private networks webhooks may reach.")
    auth_cache_s: float = Field(default=30.0, ge=0, description="How long a verified key is remembered.")
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
    redis_retry_s: float = Field(default=5.0, ge=0, description="After a Redis failure, limits are off this long.")
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
        return self
