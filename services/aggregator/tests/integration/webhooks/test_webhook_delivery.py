"""Webhook delivery against real Postgres and HTTP receivers on loopback."""

import base64
import hashlib
import hmac
import json

import pytest
from sqlalchemy import select

from pixtools_db import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.integration


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver's check, written from the Standard Webhooks scheme."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, candidate) for candidate in headers["webhook-signature"].split(" "))


async def delivery_state(db, delivery_id, state):
    delivery = await db.get(WebhookDelivery, delivery_id)
    return delivery if delivery.state == state else None


async def test_finished_job_webhook_arrives_signed_with_the_event(
    start_aggregator, publisher, db, receiver, wait_until
):
    await start_aggregator()
    hook = await receiver([204])
    job = await db.job([{"op": "convert", "params": {"format": "webp"}}], webhook_url=hook.url)

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await publisher.publish(job.completed("0", traceparent=f"00-{trace_id}-00f067aa0ba902b7-01"))
    await wait_until(lambda: _received(hook, 1))

    [request] = hook.requests
    assert verify(job.secret, request.headers, request.body)
    assert request.path == hook.path
    assert request.headers["host"] == hook.url.split("/")[2]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["traceparent"].split("-")[1] == trace_id
    payload = json.loads(request.body)
    assert payload["type"] == "job.completed.v1"
    assert payload["data"]["job_id"] == str(job.id)
    assert payload["data"]["state"] == "succeeded"
    delivery = await wait_until(lambda: _delivery_for_job(db, job.id, "delivered"))
    assert (delivery.attempts, delivery.last_status) == (1, 204)
    assert request.headers["webhook-id"] == str(delivery.id)


async def test_finished_batch_webhook_arrives_signed_once_without_a_job(
    start_aggregator, publisher, db, receiver, wait_until
):
    await start_aggregator()
    hook = await receiver([200])
    tenant = await db.tenant()
    batch_id = await db.batch(tenant, webhook_url=hook.url)
    jobs = [await db.job([{"op": "metadata"}], tenant=tenant, batch_id=batch_id) for _ in range(2)]

    for job in jobs:
        await publisher.publish(job.completed("0"))
    delivery = await wait_until(lambda: _delivery_for_batch(db, batch_id, "delivered"))

    [request] = hook.requests
    _, secret = tenant
    assert verify(secret, request.headers, request.body)
    assert request.headers["webhook-id"] == str(delivery.id)
    assert delivery.job_id is None
    payload = json.loads(request.body)
    assert payload["type"] == "batch.finished.v1"
    assert payload["data"]["batch_id"] == str(batch_id)
    assert payload["data"]["state"] == "succeeded"
    assert payload["data"]["totals"]["succeeded"] == payload["data"]["totals"]["total"] == 2


async def test_failing_receiver_is_retried_with_growing_gaps_until_it_answers_2xx(
    start_aggregator, db, receiver, wait_until
):
    await start_aggregator(webhook_retry_schedule=[0.3, 0.9, 5.0], webhook_jitter=0.1)
    hook = await receiver([500, 500, 200])
    delivery_id = await db.delivery(hook.url)

    delivery = await wait_until(lambda: delivery_state(db, delivery_id, "delivered"), within=10)

    assert delivery.attempts == 3
    assert delivery.last_status == 200
    first, second, third = (request.at for request in hook.requests)
    assert 0.27 <= second - first < 0.9
    assert third - second >= 0.81
    assert third - second > second - first


async def test_410_disables_the_endpoint_and_later_deliveries_send_nothing(start_aggregator, db, receiver, wait_until):
    await start_aggregator()
    hook = await receiver([410])
    first = await db.delivery(hook.url)
    await wait_until(lambda: delivery_state(db, first, "disabled"))
    assert (await db.get(WebhookEndpoint, hook.url)).disabled_at is not None

    second = await db.delivery(hook.url)
    delivery = await wait_until(lambda: delivery_state(db, second, "disabled"))

    assert delivery.attempts == 0
    assert len(hook.requests) == 1


async def test_redirect_is_not_followed_and_counts_as_a_failure(start_aggregator, db, receiver, wait_until):
    await start_aggregator(webhook_retry_schedule=[0.1])
    elsewhere = await receiver([200])
    hook = await receiver([302], location=elsewhere.url)
    delivery_id = await db.delivery(hook.url)

    delivery = await wait_until(lambda: delivery_state(db, delivery_id, "failed"))

    assert (delivery.attempts, delivery.last_status) == (2, 302)
    assert "not followed" in delivery.last_error
    assert len(hook.requests) == 2
    assert elsewhere.requests == []


async def test_private_address_is_blocked_when_not_allowlisted(start_aggregator, db, receiver, wait_until):
    await start_aggregator(webhook_allow_cidrs=[])
    hook = await receiver([200])
    delivery_id = await db.delivery(hook.url)

    delivery = await wait_until(lambda: delivery_state(db, delivery_id, "blocked"))

    assert "not public" in delivery.last_error
    assert hook.requests == []


async def test_circuit_opens_for_a_failing_endpoint_while_another_still_receives(
    start_aggregator, db, receiver, wait_until
):
    await start_aggregator(webhook_breaker_threshold=2, webhook_breaker_cooldown_s=30, webhook_retry_schedule=[0.1] * 5)
    failing = await receiver([500])
    healthy = await receiver([200])
    postponed = [await db.delivery(failing.url) for _ in range(3)]

    endpoint = await wait_until(lambda: _open_endpoint(db, failing.url))
    later = await db.delivery(healthy.url)
    await wait_until(lambda: delivery_state(db, later, "delivered"))
    await wait_until(lambda: _received(healthy, 1))

    assert len(failing.requests) == 2
    deliveries = [await db.get(WebhookDelivery, delivery_id) for delivery_id in postponed]
    assert {delivery.state for delivery in deliveries} == {"pending"}
    assert sum(delivery.attempts for delivery in deliveries) == 2
    assert all(delivery.next_attempt_at >= endpoint.open_until for delivery in deliveries if delivery.attempts == 0)
    assert (await db.get(WebhookEndpoint, healthy.url)).open_until is None


async def _received(hook, count):
    return len(hook.requests) >= count


async def _open_endpoint(db, url):
    endpoint = await db.get(WebhookEndpoint, url)
    return endpoint if endpoint is not None and endpoint.open_until is not None else None


async def _delivery_for_job(db, job_id, state):
    async with db.sessions() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
    return delivery if delivery is not None and delivery.state == state else None


async def _delivery_for_batch(db, batch_id, state):
    async with db.sessions() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.batch_id == batch_id))
    return delivery if delivery is not None and delivery.state == state else None
