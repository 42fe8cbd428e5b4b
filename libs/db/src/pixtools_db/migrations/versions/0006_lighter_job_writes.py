"""lighter job writes: the idempotency key's unique index holds only jobs that have a key, and outputs reference
their job through their step alone

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    # Every job row, keyed or not, had an entry in the constraint's index, written again by each update of the job
    # (none is HOT: `state` is indexed). A partial unique index refuses the same duplicates: NULL keys never
    # conflicted, and the gateway's lookup by (tenant, key) implies the key is not NULL.
    op.drop_constraint("uq_jobs_tenant_idempotency_key", "jobs", type_="unique")
    op.create_index(
        "uq_jobs_tenant_idempotency_key",
        "jobs",
        ["tenant_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    # (job_id, step_id) references steps, whose job_id references jobs, both ON DELETE CASCADE: this second check
    # of every inserted output found nothing the first did not.
    op.drop_constraint("outputs_job_id_fkey", "outputs", type_="foreignkey")


def downgrade() -> None:
    """Revert this revision."""
    op.create_foreign_key("outputs_job_id_fkey", "outputs", "jobs", ["job_id"], ["id"], ondelete="CASCADE")
    op.drop_index(
        "uq_jobs_tenant_idempotency_key", table_name="jobs", postgresql_where=sa.text("idempotency_key IS NOT NULL")
    )
    op.create_unique_constraint("uq_jobs_tenant_idempotency_key", "jobs", ["tenant_id", "idempotency_key"])
