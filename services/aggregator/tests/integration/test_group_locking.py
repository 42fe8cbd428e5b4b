"""A group reads its jobs and their steps in the statement that locks them: what it reads must be what the
transaction it waited for committed, not what its snapshot saw before the wait."""

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text, update

from pixtools_aggregator.adapters.jobs import job_transaction
from pixtools_db import Inbox, Job, Step

pytestmark = pytest.mark.integration

TWO_STEPS = [{"op": "resize", "params": {"width": 64}}, {"op": "convert", "params": {"format": "webp"}}]

WAITING_GROUPS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    " AND query LIKE 'WITH pairs AS%'"
)


async def test_a_group_that_waited_for_a_jobs_lock_reads_the_steps_its_holder_committed(sessions, db, wait_until):
    job = await db.job(TWO_STEPS)
    now = datetime.now(UTC)

    async def waiting_groups() -> int:
        async with sessions() as session:
            return int(await session.scalar(WAITING_GROUPS) or 0)

    async def prepared_steps() -> tuple[str, dict[str, str]]:
        async with job_transaction(sessions) as jobs:
            await jobs.prepare([job.completed("1")])
            locked = await jobs.lock_job(job.id)
            assert locked is not None
            return locked.state, {step.step_id: step.state for step in await jobs.steps(job.id)}

    async with sessions.begin() as holder:
        # Another transaction owns the job: it has applied step 0 and commits while the group waits for the lock.
        await holder.execute(select(Job.id).where(Job.id == job.id).with_for_update())
        await holder.execute(
            update(Step)
            .where(Step.job_id == job.id, Step.step_id == "0")
            .values(state="succeeded", started_at=now, finished_at=now)
        )
        await holder.execute(update(Job).where(Job.id == job.id).values(state="running", started_at=now))
        group = asyncio.create_task(prepared_steps())
        await wait_until(waiting_groups)

    job_state, step_states = await asyncio.wait_for(group, timeout=10)
    assert job_state == "running"
    assert step_states == {"0": "succeeded", "1": "pending"}


async def test_a_group_that_rolls_back_leaves_no_inbox_claim_and_no_lock(sessions, db):
    job = await db.job(TWO_STEPS)
    event = job.completed("0")

    async def failing_group() -> None:
        async with job_transaction(sessions) as jobs:
            await jobs.prepare([event])
            raise RuntimeError("the group failed")

    with pytest.raises(RuntimeError, match="the group failed"):
        await failing_group()

    async with sessions.begin() as session:
        claims = await session.scalar(select(func.count()).select_from(Inbox).where(Inbox.event_id == event.event_id))
        # NOWAIT: a lock the group left behind would fail this at once instead of hanging the test.
        locked = await session.scalar(select(Job.id).where(Job.id == job.id).with_for_update(nowait=True))
    assert claims == 0
    assert locked == job.id
