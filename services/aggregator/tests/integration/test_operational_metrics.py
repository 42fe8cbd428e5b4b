"""The aggregator's operational metrics: end-to-end job latency, and the sampled outbox, queue and breaker backlogs."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from sqlalchemy import delete

from pixtools_aggregator.adapters.backlog import read_database_backlog
from pixtools_aggregator.backlog import BacklogSampler, watched_queues
from pixtools_db import Outbox, WebhookEndpoint
from pixtools_platform.broker import Topology
from pixtools_platform.broker.depths import QueueDepthReader

from .conftest import metric

pytestmark = pytest.mark.integration

ENDPOINTS = ("https://hooks.example.com/a?token=secret", "https://gone.example.org/b")


async def test_finished_job_observes_its_end_to_end_duration_under_its_final_state(
    start_aggregator, publisher, db, terminal_events
):
    await start_aggregator()
    job = await db.job([{"op": "convert", "params": {"format": "webp"}}])
    count_before = metric("pixtools_job_duration_seconds_count", state="succeeded")
    total_before = metric("pixtools_job_duration_seconds_sum", state="succeeded")

    await publisher.publish(job.completed("0"))
    await terminal_events.next_for(job.id)

    assert metric("pixtools_job_duration_seconds_count", state="succeeded") == count_before + 1
    assert metric("pixtools_job_duration_seconds_sum", state="succeeded") > total_before


async def test_sampler_reports_outbox_backlog_dead_letters_of_the_bulk_lane_and_tripped_breakers(
    sessions, infra: Any, namespace: str
):
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        session.add(
            Outbox(
                event_id=uuid.uuid4(),
                event_type="job.submitted.v1",
                routing_key="job.submitted.v1",
                body=b"{}",
                headers={},
                created_at=now - timedelta(seconds=90),
            )
        )
        session.add(WebhookEndpoint(url=ENDPOINTS[0], open_until=now + timedelta(hours=1)))
        session.add(WebhookEndpoint(url=ENDPOINTS[1], disabled_at=now))
    topology = Topology(namespace)
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        dead_letters = await channel.declare_queue(topology.dead_letter_queue("ingest.bulk"), durable=True)
        await channel.default_exchange.publish(aio_pika.Message(b"poison"), routing_key=dead_letters.name)
        reader = QueueDepthReader(infra.amqp_url, "test-backlog")
        sampler = BacklogSampler(
            read_database=lambda: read_database_backlog(sessions),
            read_queues=reader.read,
            queues=watched_queues(topology, "aggregator"),
            interval_s=60,
        )
        try:
            await sampler.sample_once()
        finally:
            await reader.close()
    finally:
        await connection.close()
        async with sessions.begin() as session:
            await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.url.in_(ENDPOINTS)))

    assert metric("pixtools_outbox_unpublished") == 1
    assert metric("pixtools_outbox_oldest_age_seconds") >= 90
    assert metric("pixtools_queue_messages", consumer="ingest.bulk", role="dead_letter") == 1
    assert metric("pixtools_queue_messages", consumer="ingest", role="dead_letter") == 0
    assert metric("pixtools_webhook_breakers_tripped", host="hooks.example.com", state="open") == 1
    assert metric("pixtools_webhook_breakers_tripped", host="gone.example.org", state="disabled") == 1
    assert metric("pixtools_webhook_breakers", state="open") >= 1
    assert metric("pixtools_backlog_sampled_timestamp_seconds") >= now.timestamp()


def test_both_lanes_of_every_stage_and_the_aggregator_are_watched_with_their_dead_letter_queues():
    watched = {(queue.consumer, queue.role) for queue in watched_queues(Topology("ns"), "aggregator")}

    for consumer in ("ingest", "ingest.bulk", "denoise", "denoise.bulk", "detect", "detect.bulk", "aggregator"):
        assert {(consumer, "work"), (consumer, "dead_letter")} <= watched
