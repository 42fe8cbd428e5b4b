"""Prometheus metrics of the aggregator."""

from prometheus_client import Counter, Histogram

EVENTS_APPLIED = Counter(
    "pixtools_aggregator_events_total",
    "Step events handled, by type and outcome (applied, unchanged, duplicate, ignored).",
    ["type", "outcome"],
)
JOBS_FINISHED = Counter("pixtools_jobs_finished_total", "Jobs that reached a terminal state, by state.", ["state"])
WEBHOOK_ATTEMPTS = Counter(
    "pixtools_webhook_attempts_total",
    "Webhook deliveries handled, by outcome (delivered, retry, exhausted, gone, blocked, disabled, postponed).",
    ["outcome"],
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "pixtools_webhook_delivery_seconds",
    "Time from a webhook being queued to its successful delivery, retries included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
)
WEBHOOK_REQUEST_SECONDS = Histogram(
    "pixtools_webhook_request_seconds",
    "Duration of one webhook request, from the target check to the response status.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETENTION_DELETED = Counter(
    "pixtools_retention_deleted_total",
    "What the retention cleanup deleted, by kind (jobs, objects, batches, inbox, outbox).",
    ["kind"],
)
