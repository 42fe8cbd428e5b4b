"""Verifying webhooks as Standard Webhooks describes: HMAC-SHA256 over `id.timestamp.body`, base64, `v1,` prefix."""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from pixtools_client._errors import PixToolsError

DEFAULT_TOLERANCE_S = 300


class WebhookVerificationError(PixToolsError):
    """A webhook's headers, timestamp or signature did not check out; do not trust its body."""


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as error:
        raise ValueError("the webhook secret is not 'whsec_' followed by base64") from error


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes | list[str | bytes],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """The webhook's JSON payload, once one of its `v1,` signatures matches one of the secrets.

    During a secret rotation the sender signs with both secrets (two signatures in `webhook-signature`), and a
    receiver may hold both too: either match is enough. A timestamp further than `tolerance_s` from now is refused,
    so a captured request cannot be replayed later.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    message_id, timestamp, signatures = (
        lowered.get(name) for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not message_id or not timestamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        sent_at = int(timestamp)
    except ValueError as error:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time in seconds") from error
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance: too old or in the future")
    payload = body.encode() if isinstance(body, str) else body
    signed = f"{message_id}.{sent_at}.".encode() + payload
    secrets = secret if isinstance(secret, list) else [secret]
    expected = [base64.b64encode(hmac.new(_key(key), signed, hashlib.sha256).digest()) for key in secrets]
    offered = [
        value.encode() for version, _, value in (item.partition(",") for item in signatures.split()) if version == "v1"
    ]
    if not any(hmac.compare_digest(mine, theirs) for mine in expected for theirs in offered):
        raise WebhookVerificationError("no webhook signature matches the secret")
    return json.loads(payload)
