"""indexes the retention cleanup deletes by: inbox by processing time, published outbox rows by publishing time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_inbox_processed", "inbox", ["processed_at"], unique=False)
    op.create_index(
        "ix_outbox_published",
        "outbox",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_outbox_published", table_name="outbox", postgresql_where=sa.text("published_at IS NOT NULL"))
    op.drop_index("ix_inbox_processed", table_name="inbox")
