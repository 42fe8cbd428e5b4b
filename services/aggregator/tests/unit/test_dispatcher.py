"""The webhook dispatcher driven with an in-memory store and sender."""

import random
import uuid
from datetime import UTC, datetime, timedelta

from pixtools_aggregator.dispatcher import WebhookDispatcher
from pixtools_aggregator.ports import DueDelivery, EndpointState, SendResult
from pixtools_aggregator.webhooks import BreakerPolicy, RetrySchedule

NOW = datetime(2025, 1, 1, tzinfo=UTC)
SECRET = "whsec_c2VjcmV0LWtleS1ieXRlcw=="


class FakeStore:
    """Hands out the deliveries it was given once, and applies the breaker like the real store."""

    def __init__(self, deliveries, breaker):
        self.due = list(deliveries)
        self.breaker = breaker
        self.endpoints: dict[str, EndpointState] = {}
        self.recorded = []

    async def claim_due(self, *, now, limit, lease):
        claimed, self.due = self.due[:limit], self.due[limit:]
        return claimed

    async def record(self, delivery, attempt, *, now):
        self.recorded.append((delivery.id, attempt))
        if attempt.endpoint_effect is None:
            return None
        state = self.breaker.after(self.endpoints.get(delivery.url, EndpointState()), attempt.endpoint_effect, now)
        self.endpoints[delivery.url] = state
        return state


class FakeSender:
    """Answers every request to a URL with that URL's status."""

    def __init__(self, statuses):
        self.statuses = statuses
        self.sent = []

    async def send(self, url, body, headers):
        self.sent.append((url, dict(headers)))
        return SendResult(status=self.statuses[url])


def due(url, secrets=(SECRET,)):
    return DueDelivery(
        id=uuid.uuid4(), url=url, payload=b"{}", traceparent=None, attempts=0, created_at=NOW,
        secrets=tuple(secrets), endpoint=EndpointState(),
    )  # fmt: skip


def dispatcher(store, sender):
    return WebhookDispatcher(
        store=store, sender=sender, schedule=RetrySchedule((1.0, 2.0)), lease=timedelta(seconds=60),
        clock=lambda: NOW, rng=random.Random(0),
    )  # fmt: skip


async def test_open_circuit_postpones_the_rest_of_the_batch_for_that_endpoint_only():
    store = FakeStore(
        [due("https://down.example/h") for _ in range(3)] + [due("https://up.example/h")],
        BreakerPolicy(threshold=1, cooldown=timedelta(minutes=1)),
    )
    sender = FakeSender({"https://down.example/h": 503, "https://up.example/h": 200})

    await dispatcher(store, sender).dispatch_once()

    assert [url for url, _ in sender.sent].count("https://down.example/h") == 1
    outcomes = [attempt.outcome for _, attempt in store.recorded]
    assert sorted(outcomes) == ["delivered", "postponed", "postponed", "retry"]
    postponed = [attempt for _, attempt in store.recorded if attempt.outcome == "postponed"]
    assert all(attempt.next_attempt_at == NOW + timedelta(minutes=1) and not attempt.counted for attempt in postponed)


async def test_each_request_is_signed_and_json():
    store = FakeStore([due("https://up.example/h", secrets=(SECRET, SECRET))], BreakerPolicy(3, timedelta(minutes=1)))
    sender = FakeSender({"https://up.example/h": 204})

    await dispatcher(store, sender).dispatch_once()

    [(_, headers)] = sender.sent
    assert headers["content-type"] == "application/json"
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert headers["webhook-id"] == str(store.recorded[0][0])
