"""webhook deliveries indexed by their job and their batch, so deleting either finds its deliveries by key

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    # Deleting a job or a batch (the retention deletes every job in time) cascades to its webhook deliveries, and
    # Postgres finds them with `WHERE job_id = $1` (or `batch_id`). With no index on the column that was a
    # sequential scan of the whole table once per deleted job. Most deliveries have one parent and not the other,
    # so each index holds only the rows that have its column.
    op.create_index(
        "ix_webhook_deliveries_job",
        "webhook_deliveries",
        ["job_id"],
        postgresql_where=sa.text("job_id IS NOT NULL"),
    )
    op.create_index(
        "ix_webhook_deliveries_batch",
        "webhook_deliveries",
        ["batch_id"],
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(
        "ix_webhook_deliveries_batch", table_name="webhook_deliveries", postgresql_where=sa.text("batch_id IS NOT NULL")
    )
    op.drop_index(
        "ix_webhook_deliveries_job", table_name="webhook_deliveries", postgresql_where=sa.text("job_id IS NOT NULL")
    )
