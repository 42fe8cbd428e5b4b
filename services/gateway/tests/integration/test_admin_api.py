"""Admin API: admin-only access, dead letters listed and discarded on a real RabbitMQ, and the admin key itself."""

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import pytest_asyncio

from .admin_support import (
    as_admin,
    dead_letter_events,
    dead_letter_for_real,
    eventually,
    listed_ids,
    listing,
    new_admin_key,
    problem,
    rabbit,
    source_requested,
    step_requested,
    step_started,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def admin_key(database_url) -> str:
    return await new_admin_key(database_url)


@pytest_asyncio.fixture
async def broker(infra, namespace):
    async with rabbit(infra.amqp_url, namespace) as opened:
        yield opened


async def test_admin_endpoints_refuse_tenant_keys_with_403_and_anonymous_callers_with_401(api, tenant_key):
    for method, path, body in (
        ("GET", "/v1/admin/dead-letters", None),
        ("POST", "/v1/admin/dead-letters/replay", {"all": True}),
        ("DELETE", "/v1/admin/dead-letters?all=true", None),
        ("GET", "/v1/admin/stats", None),
    ):
        problem(await api.client.request(method, path, json=body, headers=api.as_tenant(tenant_key)), 403, "forbidden")
        problem(await api.client.request(method, path, json=body), 401, "unauthorized")


async def test_listing_shows_reason_job_death_count_and_first_death_and_leaves_every_message_in_place(
    api, admin_key, broker
):
    started = datetime.now(UTC) - timedelta(seconds=1)  # the broker stamps x-death in whole seconds
    refused = step_requested()
    await dead_letter_for_real(broker, "ingest", refused)
    rejected = step_requested("detect")
    await broker.publisher.publish(rejected)
    work = await broker.channel.get_queue(broker.topology.queue("detect"), ensure=False)
    delivered = await eventually(lambda: work.get(no_ack=False, fail=False), lambda found: found is not None)
    await delivered.reject(requeue=False)  # RabbitMQ dead-letters it itself, with its x-death header
    await broker.dead_letter(
        "ingest.bulk",
        b"\xff not json",
        message_id="garbage-1",
        reason="invalid message: not JSON",
        routing_key="step.requested.v1.ingest.bulk",
        message_type=None,
    )
    await eventually(lambda: broker.depth(broker.topology.dead_letter_queue("detect")), lambda depth: depth == 1)
    finished = datetime.now(UTC) + timedelta(seconds=1)

    queues = await listing(api, admin_key)

    assert set(queues) == {"ingest", "ingest.bulk", "denoise", "denoise.bulk", "detect", "detect.bulk", "aggregator"}
    assert queues["denoise"] == {
        "service": "denoise",
        "queue": broker.topology.dead_letter_queue("denoise"),
        "count": 0,
        "messages": [],
    }
    [by_consumer] = queues["ingest"]["messages"]
    assert by_consumer["message_id"] == str(refused.event_id)
    assert by_consumer["dead_lettered_by"] == "consumer"
    assert by_consumer["reason"] == "this can never work"
    assert (by_consumer["event_type"], by_consumer["job_id"], by_consumer["step_id"]) == (
        "step.requested.v1",
        str(refused.job_id),
        "0",
    )
    assert (by_consumer["death_count"], by_consumer["attempts"]) == (1, 1)
    assert started <= datetime.fromisoformat(by_consumer["first_death_at"]) <= finished
    assert by_consumer["original_routing_key"] == "step.requested.v1.ingest"
    [by_broker] = queues["detect"]["messages"]
    assert by_broker["dead_lettered_by"] == "broker"
    assert (by_broker["reason"], by_broker["job_id"], by_broker["death_count"]) == ("rejected", str(rejected.job_id), 1)
    assert started <= datetime.fromisoformat(by_broker["first_death_at"]) <= finished
    assert by_broker["original_routing_key"] == "step.requested.v1.detect"
    [undecodable] = queues["ingest.bulk"]["messages"]
    assert (undecodable["message_id"], undecodable["event_type"], undecodable["job_id"]) == ("garbage-1", None, None)
    assert undecodable["reason"] == "invalid message: not JSON"

    again = await listing(api, admin_key)
    assert {service: queue["messages"] for service, queue in again.items()} == {
        service: queue["messages"] for service, queue in queues.items()
    }
    for service in ("ingest", "ingest.bulk", "detect"):
        # Messages read and left unsettled go back to their queue as the gateway's channel closes.
        dead_letter_queue = broker.topology.dead_letter_queue(service)
        assert await eventually(partial(broker.depth, dead_letter_queue), lambda depth: depth == 1) == 1


async def test_listing_filters_by_service_and_lists_at_most_limit_per_queue_in_order(api, admin_key, broker):
    ids = await dead_letter_events(broker, "aggregator", [step_started() for _ in range(3)])
    await dead_letter_events(broker, "ingest", [source_requested()])

    response = await api.client.get(
        "/v1/admin/dead-letters", params={"service": "aggregator", "limit": 2}, headers=as_admin(admin_key)
    )

    body = response.json()
    assert [queue["service"] for queue in body["queues"]] == ["aggregator"]
    assert (body["total"], body["queues"][0]["count"]) == (3, 3)
    assert [message["message_id"] for message in body["queues"][0]["messages"]] == ids[:2]
    assert await listed_ids(api, admin_key, "aggregator") == ids
    for params in ({"limit": 0}, {"limit": 1001}, {"service": "gateway"}):
        problem(
            await api.client.get("/v1/admin/dead-letters", params=params, headers=as_admin(admin_key)),
            422,
            "invalid-request",
        )


async def test_discard_removes_one_by_id_then_all_without_touching_work_queues(api, admin_key, broker):
    ids = await dead_letter_events(broker, "aggregator", [step_started() for _ in range(3)])
    await dead_letter_events(broker, "ingest.bulk", [source_requested("bulk")])
    headers = as_admin(admin_key)

    one = await api.client.delete(
        "/v1/admin/dead-letters", params={"service": "aggregator", "message_id": ids[1]}, headers=headers
    )

    assert one.json() == {"discarded": 1}
    assert await eventually(
        lambda: listed_ids(api, admin_key, "aggregator"), lambda found: found == [ids[0], ids[2]]
    ) == [
        ids[0],
        ids[2],
    ]
    problem(
        await api.client.delete("/v1/admin/dead-letters", params={"message_id": ids[1]}, headers=headers),
        404,
        "not-found",
    )
    problem(await api.client.delete("/v1/admin/dead-letters", headers=headers), 422, "invalid-request")
    everything = await api.client.delete("/v1/admin/dead-letters", params={"all": "true"}, headers=headers)
    assert everything.json() == {"discarded": 3}
    emptied = await eventually(
        lambda: api.client.get("/v1/admin/dead-letters", headers=headers),
        lambda response: response.json()["total"] == 0,
    )
    assert emptied.json()["total"] == 0
    for service in ("aggregator", "ingest.bulk"):
        assert await broker.depth(broker.topology.queue(service)) == 0


async def test_create_admin_key_prints_the_key_last_and_the_key_opens_the_admin_api(api, database_url):
    command = Path(sys.executable).parent / "pixtools-admin"
    process = await asyncio.create_subprocess_exec(
        str(command),
        "create-admin-key",
        env={**os.environ, "PIXTOOLS_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()

    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    key = lines[-1]
    assert key.startswith("pxa_")
    response = await api.client.get("/v1/admin/stats", headers=as_admin(key))
    assert response.status_code == 200, response.text
