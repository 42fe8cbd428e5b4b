"""The prose of the AsyncAPI document: summaries, the AMQP properties every message carries, the overview."""

from typing import Any

SUMMARIES = {
    "job.submitted.v1": "A job was accepted; its original is stored.",
    "step.requested.v1": (
        "Command to the owning service to run one step of a job; batch items use the key with '.bulk' appended."
    ),
    "step.started.v1": "A service began a step.",
    "step.completed.v1": "A step finished and stored its outputs.",
    "step.failed.v1": "A step failed with a reason.",
    "job.completed.v1": "A job succeeded or partially failed; lists its outputs and how to fetch each.",
    "job.failed.v1": "A job failed; lists the failed steps.",
    "job.cancelled.v1": "A job was cancelled.",
    "source.requested.v1": (
        "Command to ingest to fetch a job's original from a URL; batch items use the key with '.bulk' appended."
    ),
    "source.fetched.v1": "A job's original was fetched from its URL and stored.",
    "source.failed.v1": "A job's original could not be fetched; the job fails.",
    "objects.detected.v1": "A detect step's boxes, scores, classes and per-class counts for one image.",
}

AMQP_PROPERTIES: dict[str, Any] = {
    "message_id": {"location": "$message.payload#/event_id", "description": "The event id; dedupe on it."},
    "correlation_id": {
        "location": "$message.payload#/correlation_id",
        "description": "Shared by every event of one request.",
    },
    "app_id": {"location": "$message.payload#/producer", "description": "The producing service."},
    "content_type": {"const": "application/json", "description": "The body is UTF-8 JSON."},
    "delivery_mode": {"const": 2, "description": "Persistent."},
    "headers": {
        "traceparent": {"location": "$message.payload#/traceparent", "description": "W3C trace context."},
        "tracestate": {"location": "$message.payload#/tracestate", "description": "W3C trace state, when set."},
    },
}
"""The AMQP basic properties and headers the publisher sets on every message, and where their values come from."""


def description(exchange: str) -> str:
    """The document's overview for a deployment whose events exchange is `exchange`."""
    return (
        f"Every PixTools event is published persistent (delivery mode 2), with publisher confirms and as "
        f"mandatory, to the durable topic exchange '{exchange}' under a routing key equal to its versioned type "
        "(commands add the service and, for batch items, '.bulk'). Declare a durable queue of your own, bind it "
        "to the keys you need and ack after handling; delivery is at least once, so dedupe on event_id. Readers "
        "must ignore unknown fields: optional fields are added without a version change.\n\n"
        "**AMQP properties.** Every message carries message_id = the payload's event_id, correlation_id, "
        "type = the event type, app_id = the producer, content_type 'application/json', and the W3C trace "
        "context in the 'traceparent' and 'tracestate' headers (see each message's 'x-amqp-properties').\n\n"
        "**Fetching outputs.** An output's 'key' is a blob-store key, not a link. Each output of "
        "job.completed.v1 carries 'download_path', the gateway path '/v1/jobs/{job_id}/outputs/{output_id}' "
        "that streams it to a caller of the owning tenant (with the tenant's API key or access token). When "
        "the deployment stores objects in S3, the output also carries 'url', a signed link that needs no "
        "credentials, and 'url_expires_at'; with the local blob store these two are absent (gateway-signed "
        "links may come later), so treat them as optional and fall back to 'download_path'."
    )
