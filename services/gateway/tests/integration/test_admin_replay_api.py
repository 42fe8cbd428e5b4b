"""Admin API: replaying dead letters to their work queues on a real RabbitMQ, reopening failed steps in Postgres."""

import json
import uuid
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from pixtools_db import Job, Outbox, Step, create_engine, session_factory

from ..conftest import jpeg
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
    step_requested,
    step_started,
)

pytestmark = pytest.mark.integration

RESIZE_THEN_PNG = '[{"op": "resize", "params": {"width": 16}}, {"op": "convert", "params": {"format": "png"}}]'


@pytest_asyncio.fixture
async def admin_key(database_url) -> str:
    return await new_admin_key(database_url)


@pytest_asyncio.fixture
async def broker(infra, namespace):
    async with rabbit(infra.amqp_url, namespace) as opened:
        yield opened


async def test_replaying_one_puts_it_back_on_its_work_queue_and_takes_it_out_of_the_dead_letters(
    api, admin_key, broker
):
    first, second = await dead_letter_events(broker, "aggregator", [step_started(), step_started()])

    response = await api.client.post(
        "/v1/admin/dead-letters/replay",
        json={"service": "aggregator", "message_id": first},
        headers=as_admin(admin_key),
    )

    assert response.json() == {"replayed": 1, "skipped": 0}
    [replayed] = await broker.take(broker.topology.queue("aggregator"), 1)
    headers = replayed.headers or {}
    assert replayed.message_id == first
    assert replayed.routing_key == "aggregator"
    assert headers["x-attempt"] == 1
    assert not {"x-death-reason", "x-death-at", "x-original-routing-key"} & set(headers)
    assert headers.get("x-delivery-count", 0) == 0
    assert await broker.depth(broker.topology.queue("aggregator")) == 0
    assert await eventually(lambda: listed_ids(api, admin_key, "aggregator"), lambda ids: ids == [second]) == [second]


async def test_a_replayed_message_that_dies_again_counts_both_deaths_and_keeps_its_first_death_time(
    api, admin_key, broker
):
    event = step_started()
    first_death = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await broker.dead_letter(
        "aggregator",
        event.model_dump_json().encode(),
        message_id=str(event.event_id),
        reason="first reason",
        routing_key="step.started.v1",
        message_type=event.type,
        died_at=first_death,
    )
    replay = {"service": "aggregator", "message_id": str(event.event_id)}
    assert (await api.client.post("/v1/admin/dead-letters/replay", json=replay, headers=as_admin(admin_key))).json()[
        "replayed"
    ] == 1

    # The consumer gives up on the replayed message, which waits in its work queue.
    await dead_letter_for_real(broker, "aggregator", event, publish=False)

    [dead] = (await listing(api, admin_key, service="aggregator"))["aggregator"]["messages"]
    assert (dead["message_id"], dead["reason"], dead["attempts"]) == (str(event.event_id), "this can never work", 1)
    assert dead["death_count"] == 2
    assert datetime.fromisoformat(dead["first_death_at"]) == first_death


async def test_replaying_a_step_command_reopens_its_failed_step_and_the_job_first(
    api, tenant_key, admin_key, broker, database_url
):
    submitted = await api.client.post(
        "/v1/jobs",
        files={"file": ("photo.jpg", jpeg())},
        data={"pipeline": RESIZE_THEN_PNG},
        headers=api.as_tenant(tenant_key),
    )
    job_id = uuid.UUID(submitted.json()["job_id"])
    engine = create_engine(database_url, pool_size=1)
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        command = await session.scalar(
            select(Outbox).where(
                Outbox.routing_key == "step.requested.v1.ingest", Outbox.body.contains(str(job_id).encode())
            )
        )
        assert command is not None
        # What the aggregator records when ingest gives up on step 0: failed, its successor skipped, the job failed.
        failed_at = datetime.now(UTC)
        await session.execute(
            update(Step)
            .where(Step.job_id == job_id, Step.step_id == "0")
            .values(state="failed", finished_at=failed_at, error_code="retries_exhausted", error_message="gave up")
        )
        await session.execute(
            update(Step)
            .where(Step.job_id == job_id, Step.step_id == "1")
            .values(state="skipped", finished_at=failed_at)
        )
        await session.execute(update(Job).where(Job.id == job_id).values(state="failed", finished_at=failed_at))
    await broker.dead_letter(
        "ingest",
        command.body,
        message_id=str(command.event_id),
        reason="gave up after 3 attempts: TimeoutError",
        routing_key=command.routing_key,
    )

    response = await api.client.post(
        "/v1/admin/dead-letters/replay",
        json={"service": "ingest", "message_id": str(command.event_id)},
        headers=as_admin(admin_key),
    )

    assert response.json() == {"replayed": 1, "skipped": 0}
    async with sessions() as session:
        job = await session.get_one(Job, job_id)
        steps = (await session.scalars(select(Step).where(Step.job_id == job_id).order_by(Step.position))).all()
    await engine.dispose()
    assert (job.state, job.finished_at) == ("running", None)
    assert [(step.step_id, step.state, step.error_code) for step in steps] == [
        ("0", "pending", None),
        ("1", "pending", None),
    ]
    # The reopen and a copy of the command committed together in the outbox (the relay is off in these tests).
    assert await _staged_copy_of(database_url, command)
    assert await eventually(lambda: listed_ids(api, admin_key, "ingest"), lambda ids: ids == []) == []


async def test_a_step_command_whose_job_is_gone_is_skipped_and_stays_in_the_dead_letters(api, admin_key, broker):
    [orphan] = await dead_letter_events(broker, "ingest", [step_requested()])

    response = await api.client.post(
        "/v1/admin/dead-letters/replay", json={"service": "ingest", "all": True}, headers=as_admin(admin_key)
    )

    assert response.json() == {"replayed": 0, "skipped": 1}
    assert await broker.depth(broker.topology.queue("ingest")) == 0
    assert await listed_ids(api, admin_key, "ingest") == [orphan]


async def _staged_copy_of(database_url: str, command: Outbox) -> bool:
    """True when the outbox holds the same command under a new event id, for the same lane."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.scalars(select(Outbox).where(Outbox.routing_key == command.routing_key))).all()
    finally:
        await engine.dispose()
    original = json.loads(command.body)
    for row in rows:
        body = json.loads(row.body)
        if row.event_id != command.event_id and {**body, "event_id": None} == {**original, "event_id": None}:
            return True
    return False


async def _failed_fetch_command(api, tenant_key, sessions, *, batch: bool) -> Outbox:
    """A URL job (alone or in a batch) whose fetch command died: what ingest's give-up leaves behind."""
    body = {"pipeline": [{"op": "resize", "params": {"width": 8}}]}
    url = f"https://images.example/{uuid.uuid4()}.jpg"
    if batch:
        response = await api.client.post(
            "/v1/batches", json={**body, "items": [{"url": url}]}, headers=api.as_tenant(tenant_key)
        )
    else:
        response = await api.client.post(
            "/v1/jobs", json={**body, "source_url": url}, headers=api.as_tenant(tenant_key)
        )
    assert response.status_code == 202, response.text
    async with sessions.begin() as session:
        command = await session.scalar(select(Outbox).where(Outbox.body.contains(url.encode())))
        assert command is not None
        job_id = uuid.UUID(json.loads(command.body)["job_id"])
        await session.execute(
            update(Job).where(Job.id == job_id).values(state="failed", error_code="fetch.gave_up", error_message="x")
        )
        await session.execute(update(Step).where(Step.job_id == job_id).values(state="skipped"))
    return command


async def test_replaying_all_sends_each_dead_letter_to_its_own_work_queue_including_bulk_lanes(
    api, tenant_key, admin_key, broker, database_url
):
    engine = create_engine(database_url, pool_size=1)
    sessions = session_factory(engine)
    aggregator_ids = await dead_letter_events(broker, "aggregator", [step_started(), step_started()])
    commands = {
        "ingest.bulk": await _failed_fetch_command(api, tenant_key, sessions, batch=True),
        "ingest": await _failed_fetch_command(api, tenant_key, sessions, batch=False),
    }
    for service, command in commands.items():
        await broker.dead_letter(
            service, command.body, message_id=str(command.event_id), reason="gave up", routing_key=command.routing_key
        )
    replay = "/v1/admin/dead-letters/replay"

    one_service = await api.client.post(
        replay, json={"service": "aggregator", "all": True}, headers=as_admin(admin_key)
    )
    assert one_service.json() == {"replayed": 2, "skipped": 0}
    assert await listed_ids(api, admin_key, "ingest.bulk") == [str(commands["ingest.bulk"].event_id)]
    everything = await api.client.post(replay, json={"all": True}, headers=as_admin(admin_key))

    assert everything.json() == {"replayed": 2, "skipped": 0}
    assert [
        message.message_id for message in await broker.take(broker.topology.queue("aggregator"), 2)
    ] == aggregator_ids
    for command in commands.values():
        assert await _staged_copy_of(database_url, command)
    async with sessions() as session:  # each job waits for its source again
        for command in commands.values():
            job = await session.get_one(Job, uuid.UUID(json.loads(command.body)["job_id"]))
            assert (job.state, job.error_code) == ("accepted", None)
    await engine.dispose()
    emptied = await eventually(
        lambda: api.client.get("/v1/admin/dead-letters", headers=as_admin(admin_key)),
        lambda response: response.json()["total"] == 0,
    )
    assert emptied.json()["total"] == 0


async def test_replay_answers_404_for_an_unknown_message_and_422_for_an_unclear_selection(api, admin_key, broker):
    replay = "/v1/admin/dead-letters/replay"
    headers = as_admin(admin_key)
    problem(
        await api.client.post(replay, json={"service": "ingest", "message_id": "nope"}, headers=headers),
        404,
        "not-found",
    )
    for body in ({}, {"service": "ingest"}, {"message_id": "x", "all": True}, {"service": "gateway", "all": True}):
        problem(await api.client.post(replay, json=body, headers=headers), 422, "invalid-request")


async def test_a_dead_letter_no_work_queue_would_take_fails_to_replay_and_stays(api, admin_key, broker):
    # denoise has never started here: its dead-letter queue exists, its work queue does not.
    dead_letter_queue = await broker.channel.declare_queue(
        broker.topology.dead_letter_queue("denoise"), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_letter_queue.bind(broker.topology.dead_letters, routing_key="denoise")
    [stuck] = await dead_letter_events(broker, "denoise", [step_started()])

    response = await api.client.post(
        "/v1/admin/dead-letters/replay", json={"service": "denoise", "all": True}, headers=as_admin(admin_key)
    )

    problem(response, 409, "replay-unroutable")
    assert await eventually(lambda: listed_ids(api, admin_key, "denoise"), lambda ids: ids == [stuck]) == [stuck]
