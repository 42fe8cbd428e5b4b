"""Prometheus metrics of the aggregator.

The backlog gauges (outbox, webhook breakers, queue depths) describe shared state, not this replica: every
replica samples them on an interval (`PIXTOOLS_BACKLOG_SAMPLE_S`), so queries take the max across instances.
"""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "pixtools_aggregator_events_total",
    "Step events handled, by type and outcome (applied, unchanged, duplicate, ignored).",
    ["type", "outcome"],
)
JOBS_FINISHED = Counter("pixtools_jobs_finished_total", "Jobs that reached a terminal state, by state.", ["state"])
WEBHOOK_ATTEMPTS = Counter(
    "pixtools_webhook_attempts_total",
    "Webhook deliveries handled, by outcome (delivered, retry, exhausted, gone, blocked, disabled, postponed) "
    "and endpoint host.",
    ["outcome", "host"],
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
JOB_DURATION_SECONDS = Histogram(
    "pixtools_job_duration_seconds",
    "End-to-end job latency, from the job being accepted to its terminal state, by that state.",
    ["state"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
OUTBOX_UNPUBLISHED = Gauge(
    "pixtools_outbox_unpublished", "Outbox rows not yet published (the gateway's and the aggregator's, one table)."
)
OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "pixtools_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row; 0 when none waits."
)
WEBHOOK_BREAKERS = Gauge(
    "pixtools_webhook_breakers", "Webhook endpoints by circuit-breaker state (closed, open, disabled).", ["state"]
)
WEBHOOK_BREAKERS_TRIPPED = Gauge(
    "pixtools_webhook_breakers_tripped",
    "Endpoints of each host whose breaker is open or disabled; hosts with only closed breakers are absent.",
    ["host", "state"],
)
QUEUE_MESSAGES = Gauge(
    "pixtools_queue_messages",
    "Ready messages in each consuming queue, by consumer (service or '.bulk' lane) and role (work, dead_letter).",
    ["consumer", "role"],
)
QUEUE_CONSUMERS = Gauge("pixtools_queue_consumers", "Consumers of each consuming queue.", ["consumer", "role"])
BACKLOG_SAMPLED = Gauge(
    "pixtools_backlog_sampled_timestamp_seconds", "When the backlog gauges were last sampled successfully (Unix time)."
)
