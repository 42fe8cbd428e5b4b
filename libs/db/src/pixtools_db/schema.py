"""Tables: tenants and keys, batches, jobs and their steps and outputs, the outbox and inbox, webhooks, leases."""

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pixtools_contracts import JobState, StepState


class Base(DeclarativeBase):
    """Declarative base with stable constraint names, so migrations can refer to them."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
        uuid.UUID: UUID(as_uuid=True),
    }


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Tenant(Base):
    """A customer; owns keys, jobs and a webhook signing secret."""

    __tablename__ = "tenants"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    webhook_secret: Mapped[str] = mapped_column(String(200))
    previous_webhook_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()


class TenantLimits(Base):
    """A tenant's own rate limits and quota; a missing row or an empty column means the gateway's default."""

    __tablename__ = "tenant_limits"
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    submissions_per_s: Mapped[int | None] = mapped_column(Integer, comment="Jobs submitted per second.")
    reads_per_s: Mapped[int | None] = mapped_column(Integer, comment="Read requests per second.")
    streams: Mapped[int | None] = mapped_column(Integer, comment="Progress streams open at once.")
    unfinished_jobs: Mapped[int | None] = mapped_column(Integer, comment="Jobs accepted or running at once.")
    updated_at: Mapped[datetime] = _now()


class ApiKey(Base):
    """An API key, stored as its SHA-256 only, with the scopes it grants; admin keys have no tenant.

    A trigger NOTIFYs `pixtools_api_keys` with the key's id whenever its revocation, expiry or scopes change
    or it is deleted, so every gateway drops what it cached about the key.
    """

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant", "tenant_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(Base):
    """A single-use refresh token, stored as its SHA-256; tokens rotated from one another share a family."""

    __tablename__ = "refresh_tokens"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Batch(Base):
    """Many jobs submitted together with one pipeline; its state follows its jobs'."""

    __tablename__ = "batches"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20), server_default=JobState.RUNNING.value)
    source: Mapped[str] = mapped_column(String(10), comment="How the items came: 'urls', 'csv' or 'files'.")
    pipeline: Mapped[list[Any]] = mapped_column()
    item_count: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[list[Any]] = mapped_column(comment="Items dropped as duplicates of an earlier URL.")
    webhook_url: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str] = mapped_column(String(100))
    traceparent: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_batches_tenant_idempotency_key"),
        Index("ix_batches_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
    )


class Job(Base):
    """One source image and its pipeline tree; the input columns stay empty until a URL source is fetched."""

    __tablename__ = "jobs"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20), server_default=JobState.ACCEPTED.value)
    pipeline: Mapped[list[Any]] = mapped_column()
    step_count: Mapped[int] = mapped_column(Integer)
    leaf_count: Mapped[int] = mapped_column(Integer)
    input_key: Mapped[str | None] = mapped_column(Text)
    input_content_type: Mapped[str | None] = mapped_column(String(100))
    input_bytes: Mapped[int | None] = mapped_column(BigInteger)
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    input_width: Mapped[int | None] = mapped_column(Integer)
    input_height: Mapped[int | None] = mapped_column(Integer)
    source_url: Mapped[str | None] = mapped_column(Text, comment="Where ingest fetches the original from.")
    source_name: Mapped[str | None] = mapped_column(String(255), comment="The uploaded file's name.")
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    batch_position: Mapped[int | None] = mapped_column(Integer)
    item_id: Mapped[str | None] = mapped_column(String(200), comment="The client's id of the batch item.")
    error_code: Mapped[str | None] = mapped_column(String(100), comment="Why the job as a whole failed or ended.")
    error_message: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str] = mapped_column(String(100))
    traceparent: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # Partial: only keyed jobs need the entry, and every job update (never HOT) would write it again.
        Index(
            "uq_jobs_tenant_idempotency_key",
            "tenant_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_jobs_tenant_created", "tenant_id", text("created_at DESC"), text("id DESC")),
        Index("ix_jobs_tenant_state_created", "tenant_id", "state", text("created_at DESC"), text("id DESC")),
        Index("ix_jobs_batch_position", "batch_id", "batch_position", postgresql_where=text("batch_id IS NOT NULL")),
        Index("ix_jobs_batch_state", "batch_id", "state", postgresql_where=text("batch_id IS NOT NULL")),
        Index("ix_jobs_created", "created_at"),
    )


class Step(Base):
    """One node of a job's tree; its state only moves forward."""

    __tablename__ = "steps"
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column()
    is_leaf: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(20), server_default=StepState.PENDING.value)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column()

    __table_args__ = (Index("ix_steps_finished", "finished_at", postgresql_where=text("finished_at IS NOT NULL")),)


class Output(Base):
    """An object a step stored."""

    __tablename__ = "outputs"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # No foreign key of its own to jobs: (job_id, step_id) references the step, which references the job.
    job_id: Mapped[uuid.UUID] = mapped_column()
    step_id: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    is_final: Mapped[bool] = mapped_column(Boolean, comment="Listed as a job output: an artifact, or a leaf's image.")
    key: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(100))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        UniqueConstraint("job_id", "step_id", "name", name="uq_outputs_job_step_name"),
        ForeignKeyConstraint(["job_id", "step_id"], ["steps.job_id", "steps.step_id"], ondelete="CASCADE"),
    )


class Outbox(Base):
    """Events committed with the state that caused them; a relay publishes them with confirms."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    routing_key: Mapped[str] = mapped_column(String(200))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_published", "published_at", postgresql_where=text("published_at IS NOT NULL")),
    )


class Inbox(Base):
    """Event ids a consumer has already applied, so redeliveries change nothing."""

    __tablename__ = "inbox"
    consumer: Mapped[str] = mapped_column(String(50), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime] = _now()

    __table_args__ = (Index("ix_inbox_processed", "processed_at"),)


class WebhookEndpoint(Base):
    """A webhook URL's health: its circuit breaker and whether a 410 disabled it."""

    __tablename__ = "webhook_endpoints"
    url: Mapped[str] = mapped_column(Text, primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    open_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One webhook message and its delivery attempts."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    traceparent: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = _now()
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
        # Deleting a job or a batch finds its deliveries by these (the foreign keys' cascades).
        Index("ix_webhook_deliveries_job", "job_id", postgresql_where=text("job_id IS NOT NULL")),
        Index("ix_webhook_deliveries_batch", "batch_id", postgresql_where=text("batch_id IS NOT NULL")),
    )


class Lease(Base):
    """A named lease, so one replica at a time runs a periodic task."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
