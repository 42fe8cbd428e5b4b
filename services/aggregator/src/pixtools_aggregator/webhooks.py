"""Standard Webhooks: the payload envelope, signing, the retry schedule and the per-endpoint circuit breaker."""

import base64
import binascii
import hashlib
import hmac
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pixtools_aggregator.errors import InvalidWebhookSecret
from pixtools_aggregator.ports import EndpointEffect, EndpointState
from pixtools_contracts import BatchFinished, Event

SECRET_PREFIX = "whsec_"


def webhook_payload(message: Event | BatchFinished) -> bytes:
    """The body sent for a job event or finished batch: {"type", "timestamp", "data"}, as Standard Webhooks suggests."""
    data = message.model_dump(mode="json")
    # The data's own rendering of the time: RFC 3339 in UTC, as everywhere in the HTTP API.
    at = data["finished_at"] if isinstance(message, BatchFinished) else data["occurred_at"]
    envelope = {"type": message.type, "timestamp": at, "data": data}
    return json.dumps(envelope, separators=(",", ":")).encode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a 'whsec_<base64>' secret."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidWebhookSecret("webhook secret is not 'whsec_' followed by base64") from error
    if not key:
        raise InvalidWebhookSecret("webhook secret is empty")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One 'v1,<base64 HMAC-SHA256>' signature over '<id>.<timestamp>.<body>'."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(*, message_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The webhook-id, webhook-timestamp and webhook-signature headers, one signature per active secret."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, message_id, timestamp, body) for secret in secrets),
    }


def signing_secrets(
    current: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The secrets to sign with: the current one, plus the previous one while its rotation grace lasts."""
    if previous and previous_expires_at is not None and previous_expires_at > now:
        return (current, previous)
    return (current,)


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between attempts, each shortened by up to `jitter` of itself at random."""

    delays_s: tuple[float, ...]
    jitter: float = 0.0

    @property
    def max_attempts(self) -> int:
        """Attempts a delivery gets: the first, then one per delay."""
        return len(self.delays_s) + 1

    def delay_after(self, attempts: int, rng: random.Random) -> timedelta | None:
        """The wait after `attempts` failed attempts (1-based), or None when the schedule is exhausted."""
        if attempts < 1 or attempts > len(self.delays_s):
            return None
        nominal = self.delays_s[attempts - 1]
        # Jitter only shortens a delay, so the schedule is an upper bound operators can rely on.
        return timedelta(seconds=nominal * (1 - self.jitter * rng.random()))


@dataclass(frozen=True)
class BreakerPolicy:
    """When an endpoint's circuit opens, and for how long."""

    threshold: int
    cooldown: timedelta

    def after(self, state: EndpointState, effect: EndpointEffect, now: datetime) -> EndpointState:
        """The endpoint's state after an attempt ended with `effect`."""
        if effect == "success":
            return replace(state, consecutive_failures=0, open_until=None)
        if effect == "gone":
            return replace(state, disabled_at=now)
        failures = state.consecutive_failures + 1
        # Once at the threshold, every further failure (the probe after a cooldown) reopens the circuit.
        open_until = now + self.cooldown if failures >= self.threshold else state.open_until
        return replace(state, consecutive_failures=failures, open_until=open_until)
