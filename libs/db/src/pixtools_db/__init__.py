"""The Postgres schema shared by the gateway and the aggregator, and its migrations."""

from pixtools_db.engine import create_engine, session_factory
from pixtools_db.lease import PostgresLease, acquire_lease, release_lease, renew_lease
from pixtools_db.migrate import upgrade
from pixtools_db.schema import (
    ApiKey,
    Base,
    Batch,
    Inbox,
    Job,
    Lease,
    Outbox,
    Output,
    RefreshToken,
    Step,
    Tenant,
    TenantLimits,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "ApiKey",
    "Base",
    "Batch",
    "Inbox",
    "Job",
    "Lease",
    "Outbox",
    "Output",
    "PostgresLease",
    "RefreshToken",
    "Step",
    "Tenant",
    "TenantLimits",
    "WebhookDelivery",
    "WebhookEndpoint",
    "acquire_lease",
    "create_engine",
    "release_lease",
    "renew_lease",
    "session_factory",
    "upgrade",
]
