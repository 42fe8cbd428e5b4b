"""Standard Webhooks signing and the payload envelope."""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pixtools_aggregator.errors import InvalidWebhookSecret
from pixtools_aggregator.webhooks import sign, signed_headers, signing_secrets, webhook_payload
from pixtools_contracts import BatchFinished, BatchTotals, JobFailed

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OLD_KEY = b"previous-secret-key-bytes"
OLD_SECRET = "whsec_" + base64.b64encode(OLD_KEY).decode()


def expected_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_signature_is_base64_hmac_sha256_over_id_timestamp_and_body():
    body = b'{"type":"job.completed.v1"}'
    assert sign(SECRET, "msg_1", 1_700_000_000, body) == expected_signature(KEY, "msg_1", 1_700_000_000, body)


def test_signature_matches_the_published_standard_webhooks_vector():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_carry_id_timestamp_and_one_signature_per_secret():
    body = b"{}"
    headers = signed_headers(message_id="d-1", timestamp=42, body=body, secrets=[SECRET, OLD_SECRET])
    assert headers["webhook-id"] == "d-1"
    assert headers["webhook-timestamp"] == "42"
    assert headers["webhook-signature"].split(" ") == [
        expected_signature(KEY, "d-1", 42, body),
        expected_signature(OLD_KEY, "d-1", 42, body),
    ]


def test_previous_secret_signs_only_while_its_grace_period_lasts():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert signing_secrets(SECRET, OLD_SECRET, now + timedelta(hours=1), now) == (SECRET, OLD_SECRET)
    assert signing_secrets(SECRET, OLD_SECRET, now - timedelta(seconds=1), now) == (SECRET,)
    assert signing_secrets(SECRET, None, None, now) == (SECRET,)


def test_secret_that_is_not_base64_is_rejected():
    with pytest.raises(InvalidWebhookSecret):
        sign("whsec_not base64!", "id", 1, b"")


def test_payload_wraps_the_event_with_its_type_and_timestamp():
    event = JobFailed(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="c",
        producer="aggregator",
        errors=[],
        submitted_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    payload = json.loads(webhook_payload(event))
    assert payload["type"] == "job.failed.v1"
    assert datetime.fromisoformat(payload["timestamp"]) == event.occurred_at
    assert JobFailed.model_validate(payload["data"]) == event


def test_finished_batch_payload_is_stamped_with_its_finish_time():
    totals = BatchTotals(queued=0, running=0, succeeded=1, partially_failed=0, failed=1, cancelled=0, total=2)
    message = BatchFinished(
        batch_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        state="partially_failed",
        totals=totals,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        finished_at=datetime(2025, 1, 1, 0, 5, tzinfo=UTC),
    )
    payload = json.loads(webhook_payload(message))
    assert payload["type"] == "batch.finished.v1"
    assert datetime.fromisoformat(payload["timestamp"]) == message.finished_at
    assert BatchFinished.model_validate(payload["data"]) == message
    assert payload["data"]["id"] == str(message.id)
