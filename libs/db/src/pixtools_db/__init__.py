"""The Postgres schema shared by the gateway and the aggregator, and its migrations."""

from pixtools_db.engine import create_engine, session_factory
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
    Step,
    Tenant,
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
    "Step",
    "Tenant",
    "WebhookDelivery",
    "WebhookEndpoint",
    "create_engine",
    "session_factory",
    "upgrade",
]
