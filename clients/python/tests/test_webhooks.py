"""verify_webhook against signatures made by the `standardwebhooks` library, as a real sender makes them."""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from pixtools_client import WebhookVerificationError, verify_webhook

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
BODY = json.dumps({"type": "job.completed.v1", "job_id": "0b9c"})


def signed(secrets: list[str], *, at: float | None = None, body: str = BODY) -> dict[str, str]:
    sent = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    signatures = [Webhook(secret).sign("msg_1", sent, body) for secret in secrets]
    return {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(sent.timestamp())),
        "Webhook-Signature": " ".join(signatures),
    }


def test_a_signature_made_by_standardwebhooks_verifies_and_returns_the_payload():
    assert verify_webhook(signed([NEW]), BODY.encode(), NEW) == {"type": "job.completed.v1", "job_id": "0b9c"}


@pytest.mark.parametrize("receiver_secret", [OLD, NEW])
def test_during_rotation_either_of_the_two_signatures_is_enough(receiver_secret):
    headers = signed([OLD, NEW])
    assert len(headers["Webhook-Signature"].split()) == 2
    assert verify_webhook(headers, BODY, receiver_secret)["job_id"] == "0b9c"


def test_a_receiver_holding_both_secrets_accepts_a_message_signed_with_either():
    assert verify_webhook(signed([OLD]), BODY, [NEW, OLD])["job_id"] == "0b9c"


def test_a_tampered_body_is_refused():
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(signed([NEW]), BODY.replace("0b9c", "ffff"), NEW)


def test_another_secret_is_refused():
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(signed([OLD]), BODY, NEW)


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused_even_with_a_valid_signature(offset_s):
    headers = signed([NEW], at=time.time() + offset_s)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(headers, BODY, NEW)
    assert verify_webhook(headers, BODY, NEW, tolerance_s=400)["job_id"] == "0b9c"


def test_missing_headers_are_refused():
    headers = signed([NEW])
    del headers["Webhook-Signature"]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook(headers, BODY, NEW)


def test_our_verifier_and_standardwebhooks_agree_on_a_rotation_header():
    headers = signed([OLD, NEW])
    lowered = {key.lower(): value for key, value in headers.items()}
    assert Webhook(OLD).verify(BODY, lowered) == verify_webhook(headers, BODY, OLD)
