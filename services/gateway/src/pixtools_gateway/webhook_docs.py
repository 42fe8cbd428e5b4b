"""The webhooks the service sends, as the OpenAPI 3.1 `webhooks` section documents them."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from pixtools_contracts import BatchFinished, JobCancelled, JobCompleted, JobFailed

VERIFYING = """Signed as [Standard Webhooks](https://www.standardwebhooks.com/): the `webhook-signature` header holds
one or more space-separated `v1,<base64>` signatures, each the HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`
keyed with the base64-decoded part of the tenant's `whsec_` secret (`GET /v1/webhooks/secret`). During a secret
rotation there are two signatures, one per secret, until the grace period ends: accept the message when any of them
matches. Check the timestamp is recent (within five minutes) to refuse replays, and dedupe on `webhook-id`.
Any Standard Webhooks library verifies it, for example in Python:
`standardwebhooks.Webhook(secret).verify(body, headers)`.

Answer 2xx once stored; anything else, a timeout or a refused connection is retried with exponential backoff,
and `410 Gone` disables the endpoint. Redirects are not followed."""


class JobWebhook(BaseModel):
    """The body of a job webhook: the terminal job event in a Standard Webhooks envelope."""

    type: Literal["job.completed.v1", "job.failed.v1", "job.cancelled.v1"] = Field(description="The event type.")
    timestamp: datetime = Field(description="When the job ended (RFC 3339, UTC).")
    data: Annotated[JobCompleted | JobFailed | JobCancelled, Field(discriminator="type")] = Field(
        description="The event as published on the broker."
    )


class BatchWebhook(BaseModel):
    """The body of a batch webhook, sent once when every job of the batch is terminal."""

    type: Literal["batch.finished.v1"] = Field(description="The message type.")
    timestamp: datetime = Field(description="When the batch finished (RFC 3339, UTC).")
    data: BatchFinished = Field(description="The finished batch and its totals.")


WebhookId = Annotated[str, Header(alias="webhook-id", description="Unique message id; the same on every retry.")]
WebhookTimestamp = Annotated[
    int, Header(alias="webhook-timestamp", description="Unix seconds when this attempt was signed.")
]
WebhookSignature = Annotated[
    str,
    Header(
        alias="webhook-signature",
        description="Space-separated `v1,<base64 HMAC-SHA256>` signatures; two during a secret rotation.",
    ),
]
_ANSWERS: dict[int | str, dict[str, str]] = {
    200: {"description": "Any 2xx: delivered."},
    410: {"description": "Gone: the endpoint is disabled and receives nothing more."},
    "default": {"description": "Anything else: the delivery is retried with backoff."},
}

webhooks = APIRouter()


@webhooks.post(
    "job",
    summary="A job ended: succeeded, partially failed, failed or cancelled",
    description="POSTed to the job's `webhook_url` once the job is terminal (again after a retry).\n\n" + VERIFYING,
    responses=_ANSWERS,
)
def job_webhook(
    body: JobWebhook, webhook_id: WebhookId, webhook_timestamp: WebhookTimestamp, webhook_signature: WebhookSignature
) -> None:
    """What the service sends to a job's webhook URL."""


@webhooks.post(
    "batch",
    summary="A batch finished: every job of it is terminal",
    description="POSTed to the batch's `webhook_url` once every job is terminal (again after a retry).\n\n" + VERIFYING,
    responses=_ANSWERS,
)
def batch_webhook(
    body: BatchWebhook,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """What the service sends to a batch's webhook URL."""
