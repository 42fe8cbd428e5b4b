"""tenant_limits: each tenant's own rate limits and unfinished-jobs quota, overriding the gateway's defaults

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "tenant_limits",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("submissions_per_s", sa.Integer(), nullable=True, comment="Jobs submitted per second."),
        sa.Column("reads_per_s", sa.Integer(), nullable=True, comment="Read requests per second."),
        sa.Column("streams", sa.Integer(), nullable=True, comment="Progress streams open at once."),
        sa.Column("unfinished_jobs", sa.Integer(), nullable=True, comment="Jobs accepted or running at once."),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("tenant_limits")
