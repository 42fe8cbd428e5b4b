"""batches, URL sources, job-level errors and the indexes job control reads by

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:13:20.193707
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "batches",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("state", sa.String(length=20), server_default="running", nullable=False),
        sa.Column(
            "source", sa.String(length=10), nullable=False, comment="How the items came: 'urls', 'csv' or 'files'."
        ),
        sa.Column("pipeline", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column(
            "duplicates",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="Items dropped as duplicates of an earlier URL.",
        ),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("correlation_id", sa.String(length=100), nullable=False),
        sa.Column("traceparent", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_batches_tenant_idempotency_key"),
    )
    op.create_index(
        "ix_batches_tenant_created",
        "batches",
        ["tenant_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.add_column(
        "jobs", sa.Column("source_url", sa.Text(), nullable=True, comment="Where ingest fetches the original from.")
    )
    op.add_column(
        "jobs", sa.Column("source_name", sa.String(length=255), nullable=True, comment="The uploaded file's name.")
    )
    op.add_column("jobs", sa.Column("batch_id", sa.UUID(), nullable=True))
    op.add_column("jobs", sa.Column("batch_position", sa.Integer(), nullable=True))
    op.add_column(
        "jobs", sa.Column("item_id", sa.String(length=200), nullable=True, comment="The client's id of the batch item.")
    )
    op.add_column(
        "jobs",
        sa.Column(
            "error_code", sa.String(length=100), nullable=True, comment="Why the job as a whole failed or ended."
        ),
    )
    op.add_column("jobs", sa.Column("error_message", sa.Text(), nullable=True))
    op.alter_column("jobs", "input_key", existing_type=sa.TEXT(), nullable=True)
    op.alter_column("jobs", "input_content_type", existing_type=sa.VARCHAR(length=100), nullable=True)
    op.alter_column("jobs", "input_bytes", existing_type=sa.BIGINT(), nullable=True)
    op.alter_column("jobs", "input_sha256", existing_type=sa.VARCHAR(length=64), nullable=True)
    op.create_index(
        "ix_jobs_batch_position",
        "jobs",
        ["batch_id", "batch_position"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_batch_state",
        "jobs",
        ["batch_id", "state"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.create_index("ix_jobs_created", "jobs", ["created_at"], unique=False)
    op.create_foreign_key("jobs_batch_id_fkey", "jobs", "batches", ["batch_id"], ["id"], ondelete="CASCADE")
    op.create_index(
        "ix_steps_finished", "steps", ["finished_at"], unique=False, postgresql_where=sa.text("finished_at IS NOT NULL")
    )
    op.add_column("webhook_deliveries", sa.Column("batch_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        "webhook_deliveries_batch_id_fkey", "webhook_deliveries", "batches", ["batch_id"], ["id"], ondelete="CASCADE"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_constraint("webhook_deliveries_batch_id_fkey", "webhook_deliveries", type_="foreignkey")
    op.drop_column("webhook_deliveries", "batch_id")
    op.drop_index("ix_steps_finished", table_name="steps", postgresql_where=sa.text("finished_at IS NOT NULL"))
    op.drop_constraint("jobs_batch_id_fkey", "jobs", type_="foreignkey")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_batch_state", table_name="jobs", postgresql_where=sa.text("batch_id IS NOT NULL"))
    op.drop_index("ix_jobs_batch_position", table_name="jobs", postgresql_where=sa.text("batch_id IS NOT NULL"))
    op.alter_column("jobs", "input_sha256", existing_type=sa.VARCHAR(length=64), nullable=False)
    op.alter_column("jobs", "input_bytes", existing_type=sa.BIGINT(), nullable=False)
    op.alter_column("jobs", "input_content_type", existing_type=sa.VARCHAR(length=100), nullable=False)
    op.alter_column("jobs", "input_key", existing_type=sa.TEXT(), nullable=False)
    op.drop_column("jobs", "error_message")
    op.drop_column("jobs", "error_code")
    op.drop_column("jobs", "item_id")
    op.drop_column("jobs", "batch_position")
    op.drop_column("jobs", "batch_id")
    op.drop_column("jobs", "source_name")
    op.drop_column("jobs", "source_url")
    op.drop_index("ix_batches_tenant_created", table_name="batches")
    op.drop_table("batches")
