"""A step's slow-start announcement counts the step's own work, not the time it waited for a worker thread."""

import asyncio
import threading
import time
import uuid

from pixtools_contracts import Event, ObjectRef, Pipeline, StepRequested, first_steps, plan, step_started
from pixtools_platform.lanes import CpuPool
from pixtools_platform.progress import announce_if_slow

AFTER_S = 0.1
"""The announcement threshold; every block below runs well under it or well over it (three times as long)."""


def _started() -> Event:
    [(step, rest)] = first_steps(plan(Pipeline.model_validate([{"op": "convert", "params": {"format": "webp"}}])))
    request = StepRequested(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="corr",
        producer="gateway",
        service="ingest",
        input=ObjectRef(key="t/j/original", content_type="image/jpeg", bytes=1, sha256="0" * 64),
        step=step,
        remaining=rest,
    )
    return step_started(request, "ingest")


class Announced:
    """Records what was announced."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)


async def _occupy(pool: CpuPool, release: threading.Event) -> asyncio.Task[None]:
    """Take the pool's only thread until `release` is set."""
    task = asyncio.create_task(pool.run(lambda: release.wait(10) and None))
    for _ in range(3):
        await asyncio.sleep(0)
    return task


async def test_a_step_queued_for_a_thread_longer_than_the_threshold_but_quick_to_run_is_not_announced() -> None:
    announced, release = Announced(), threading.Event()
    with CpuPool(1, "test-progress") as pool:
        busy = await _occupy(pool, release)
        asyncio.get_running_loop().call_later(3 * AFTER_S, release.set)
        async with announce_if_slow(announced, _started(), AFTER_S):
            assert await pool.run(lambda: "done") == "done"
        await busy
    assert announced.events == [], "waiting for a thread is not running"


async def test_a_step_whose_own_work_runs_past_the_threshold_is_announced_once() -> None:
    announced, release = Announced(), threading.Event()
    event = _started()
    with CpuPool(1, "test-progress") as pool:
        busy = await _occupy(pool, release)
        asyncio.get_running_loop().call_later(AFTER_S / 2, release.set)
        async with announce_if_slow(announced, event, AFTER_S):
            await pool.run(lambda: time.sleep(3 * AFTER_S))
            await pool.run(lambda: None)
        await busy
    assert announced.events == [event]


async def test_a_slow_step_that_never_uses_the_pool_is_announced() -> None:
    announced = Announced()
    event = _started()
    async with announce_if_slow(announced, event, AFTER_S):
        await asyncio.sleep(3 * AFTER_S)
    assert announced.events == [event]


async def test_a_fast_step_is_not_announced_and_a_zero_threshold_announces_at_once() -> None:
    announced = Announced()
    event = _started()
    with CpuPool(1, "test-progress") as pool:
        async with announce_if_slow(announced, event, AFTER_S):
            await pool.run(lambda: None)
        assert announced.events == []
        async with announce_if_slow(announced, event, 0):
            assert announced.events == [event]


async def test_a_failed_announcement_does_not_fail_the_step() -> None:
    async def broken(event: Event) -> None:
        raise ConnectionError("broker gone")

    async with announce_if_slow(broken, _started(), AFTER_S):
        await asyncio.sleep(3 * AFTER_S)
