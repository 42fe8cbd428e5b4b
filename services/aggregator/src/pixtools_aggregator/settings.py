"""The aggregator's settings, read from PIXTOOLS_* environment variables."""

from pydantic import Field, field_validator, model_validator

from pixtools_platform.settings import CidrList, CommonSettings, FloatList

DEFAULT_RETRY_SCHEDULE = [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0]


class AggregatorSettings(CommonSettings):
    """Database, webhook delivery and ops settings of the aggregator."""

    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/pixtools"
    ops_port: int = Field(default=9102, description="Port of /healthz, /readyz and /metrics; 0 disables it.")
    backlog_sample_s: float = Field(
        default=15.0, gt=0, description="How often the outbox, breaker and queue-depth gauges are sampled."
    )
    prefetch: int = Field(
        default=64, ge=1, le=1000, description="Messages the consumer holds at once; at least `group_size`."
    )
    group_size: int = Field(
        default=32,
        ge=1,
        le=500,
        description="Step events applied in one transaction at most; 1 applies every event in its own.",
    )
    group_wait_s: float = Field(
        default=0.0,
        ge=0,
        le=1.0,
        description="How long the first step event of a group waits for others when few groups are running.",
    )
    group_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Groups applied at once; events that arrive meanwhile wait and form the next group.",
    )
    outbox_poll_s: float = Field(default=0.5, gt=0, description="How often the outbox relay looks for rows.")
    presign_expiry_s: int = Field(
        default=24 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="How long the signed output links in terminal events work (S3 signs for at most 7 days).",
    )
    webhook_retry_schedule: FloatList = Field(
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
    webhook_allow_cidrs: CidrList = Field(
        default_factory=list, description="Private networks webhooks may reach anyway (the local stack: 127.0.0.0/8)."
    )
    webhook_poll_s: float = Field(default=1.0, gt=0, description="How often the dispatcher looks for due deliveries.")
    webhook_batch: int = Field(default=50, ge=1, description="Deliveries claimed at once.")
    webhook_lease_s: float = Field(
        default=60.0, gt=0, description="How long a claimed delivery is hidden from other replicas while it is sent."
    )
    retention_days: float = Field(
        default=7.0, gt=0, description="Jobs, their objects, batches and inbox rows older than this are deleted."
    )
    retention_outbox_days: float = Field(
        default=1.0, gt=0, description="Outbox rows marked published (by older versions) kept this long."
    )
    retention_interval_s: float = Field(default=300.0, gt=0, description="How often the retention cleanup runs.")
    retention_chunk: int = Field(default=100, ge=1, description="Jobs deleted per transaction by the cleanup.")

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _positive_delays(cls, value: list[float]) -> list[float]:
        if any(delay <= 0 for delay in value):
            raise ValueError("every retry delay must be positive")
        return value

    @model_validator(mode="after")
    def _prefetch_fills_group(self) -> "AggregatorSettings":
        # The broker hands out at most `prefetch` unacked messages, so a larger group could never fill.
        if self.group_size > self.prefetch:
            raise ValueError("PIXTOOLS_GROUP_SIZE must not exceed PIXTOOLS_PREFETCH")
        return self

    @model_validator(mode="after")
    def _lease_outlasts_attempt(self) -> "AggregatorSettings":
        # A lease shorter than an attempt would let another replica send the same delivery concurrently.
        if self.webhook_lease_s <= self.webhook_timeout_s:
            raise ValueError("PIXTOOLS_WEBHOOK_LEASE_S must exceed PIXTOOLS_WEBHOOK_TIMEOUT_S")
        return self
