"""SIGKILL the aggregator while it holds a group of step events: after a restart every job ends exactly once."""

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from pixtools_aggregator.settings import AggregatorSettings
from pixtools_db import Inbox, Job, Lease, Output, WebhookDelivery

pytestmark = pytest.mark.integration

CRASHING = Path(__file__).with_name("crashing_aggregator.py")
ONE_STEP = [{"op": "convert", "params": {"format": "webp"}}]


def environment(settings: AggregatorSettings) -> dict[str, str]:
    """The PIXTOOLS_* variables that give a separate process these settings."""
    return os.environ | {
        "PIXTOOLS_DATABASE_URL": settings.database_url,
        "PIXTOOLS_AMQP_URL": settings.amqp_url,
        "PIXTOOLS_NAMESPACE": settings.namespace,
        "PIXTOOLS_OPS_PORT": "0",
        "PIXTOOLS_RETRY": settings.retry.model_dump_json(),
        "PIXTOOLS_OUTBOX_POLL_S": str(settings.outbox_poll_s),
        "PIXTOOLS_LOG_JSON": "false",
    }


async def run_until_killed(point: str, settings: AggregatorSettings, folder: Path, db: Any) -> set[uuid.UUID]:
    """Run the crashing aggregator until it kills itself at `point`; the event ids of the group it held then."""
    marker = folder / "group-size"
    with (folder / "aggregator.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(CRASHING), point, str(marker), env=environment(settings), stdout=log, stderr=log
        )
        try:
            returncode = await asyncio.wait_for(process.wait(), timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert returncode == -signal.SIGKILL, (folder / "aggregator.log").read_text()[-4000:]
    # The dead process may hold the retention lease, which would expire only minutes later and hold back the
    # retention tests that follow; a replica restarting after a real crash simply waits for it.
    async with db.sessions.begin() as session:
        holder = f"{socket.gethostname()}:{process.pid}:%"
        await session.execute(delete(Lease).where(Lease.holder.like(holder)))
    return {uuid.UUID(line) for line in marker.read_text().split()}


# With a webhook, the group's transaction is joined by a session (which inserts the deliveries) and commits through
# it; without one, it commits on the asyncpg connection alone.
@pytest.mark.parametrize("webhook_url", ["http://127.0.0.1:9/hook", None], ids=["webhooks", "no_webhooks"])
@pytest.mark.parametrize("point", ["before_commit", "after_commit", "before_hand_over"])
async def test_aggregator_killed_holding_a_group_ends_every_job_exactly_once_after_a_restart(
    point,
    webhook_url,
    parked_queue,
    settings_for,
    start_aggregator,
    publisher,
    db,
    terminal_events,
    wait_until,
    tmp_path,
):
    jobs = [await db.job(ONE_STEP, webhook_url=webhook_url) for _ in range(30)]
    job_ids = [job.id for job in jobs]
    events = [job.completed("0") for job in jobs]
    await asyncio.gather(*(publisher.publish(event) for event in events))

    group = await run_until_killed(point, settings_for(), tmp_path, db)

    assert len(group) > 1
    held = [event.job_id for event in events if event.event_id in group]
    async with db.sessions() as session:
        claimed = await session.scalar(select(func.count()).select_from(Inbox).where(Inbox.event_id.in_(group)))
        finished = await session.scalar(
            select(func.count()).select_from(Job).where(Job.id.in_(held), Job.state == "succeeded")
        )
    if point == "before_commit":
        assert claimed == finished == 0, "nothing of a group that never committed may remain"
    else:
        assert claimed == finished == len(group), "the group had committed before the kill"

    await start_aggregator()
    # The killed process never published what it committed; the restarted relay's sweep does, after its grace.
    published = await terminal_events.collect(job_ids, within=60)

    # One terminal event per job, under one event id. The killed process may have published some of them right
    # after their commit without living to delete the rows; the restarted relay then publishes those again with
    # the same event id: the outbox's documented at-least-once path, which consumers deduplicate by event id.
    assert all({event.state for event in copies} == {"succeeded"} for copies in published.values())
    assert all(len({event.event_id for event in copies}) == 1 for copies in published.values())
    await wait_until(lambda: db.outbox_emptied(job_ids))
    assert set((await db.rows_per_job(Output, job_ids)).values()) == {1}
    deliveries = await db.rows_per_job(WebhookDelivery, job_ids)
    assert set(deliveries.values()) == ({1} if webhook_url else {0})


def test_the_crash_points_exist_in_the_code_they_patch(tmp_path: Any) -> None:
    # The crashing process patches these by name; a rename must fail here, not turn the crash tests into no-ops.
    from pixtools_aggregator import routing
    from pixtools_aggregator.adapters.jobs import SqlJobRepository
    from pixtools_aggregator.adapters.transactions import DriverTransaction

    assert callable(routing.step_event_group)
    assert callable(SqlJobRepository.flush_pending)
    assert callable(DriverTransaction.hand_over)
