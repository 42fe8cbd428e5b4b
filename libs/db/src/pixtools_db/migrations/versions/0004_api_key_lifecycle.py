"""API key lifecycle: names, scopes, expiry and last use; refresh tokens; NOTIFY on key changes

Existing keys keep working: tenant keys get the four tenant scopes and admin keys the `admin` scope.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every gateway LISTENs on this channel and forgets what it cached about the key whose id arrives.
_NOTIFY_FUNCTION = """
CREATE FUNCTION pixtools_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pixtools_api_keys', OLD.id::text);
    RETURN NULL;
END
$$
"""
_ON_UPDATE = """
CREATE TRIGGER api_keys_changed AFTER UPDATE ON api_keys FOR EACH ROW
WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
      OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
      OR OLD.scopes IS DISTINCT FROM NEW.scopes
      OR OLD.key_hash IS DISTINCT FROM NEW.key_hash)
EXECUTE FUNCTION pixtools_api_key_changed()
"""
_ON_DELETE = """
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys FOR EACH ROW
EXECUTE FUNCTION pixtools_api_key_changed()
"""


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("api_keys", sa.Column("name", sa.String(length=100), nullable=True))
    op.add_column("api_keys", sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=True))
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE api_keys SET name = scope || ' key ' || prefix, scopes = CASE scope WHEN 'admin' THEN ARRAY['admin'] "
        "ELSE ARRAY['jobs:read', 'jobs:write', 'keys:manage', 'webhooks:manage'] END"
    )
    op.alter_column("api_keys", "name", nullable=False)
    op.alter_column("api_keys", "scopes", nullable=False)
    op.drop_column("api_keys", "scope")
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant_id"], unique=False)
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("key_id", sa.UUID(), nullable=False),
        sa.Column("family_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_refresh_tokens_key_id", "refresh_tokens", ["key_id"], unique=False)
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"], unique=False)
    op.execute(_NOTIFY_FUNCTION)
    op.execute(_ON_UPDATE)
    op.execute(_ON_DELETE)


def downgrade() -> None:
    """Revert this revision: keys with `admin` become admin keys again, every other key a tenant key."""
    op.execute("DROP TRIGGER api_keys_deleted ON api_keys")
    op.execute("DROP TRIGGER api_keys_changed ON api_keys")
    op.execute("DROP FUNCTION pixtools_api_key_changed()")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_key_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.add_column("api_keys", sa.Column("scope", sa.String(length=16), server_default="tenant", nullable=False))
    op.execute("UPDATE api_keys SET scope = 'admin' WHERE 'admin' = ANY(scopes)")
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("api_keys", "expires_at")
    op.drop_column("api_keys", "scopes")
    op.drop_column("api_keys", "name")
