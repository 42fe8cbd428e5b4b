"""The CPU pool serves interactive work before bulk work, and otherwise behaves like a thread pool."""

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from pixtools_contracts import Lane
from pixtools_platform.lanes import CpuPool, current_lane


async def _in_lane(lane: Lane, pool: CpuPool, work: Callable[[], str]) -> str:
    current_lane.set(lane)
    return await pool.run(work)


async def _let_tasks_queue() -> None:
    # Each new task reaches its first await (pool.run's wait for a thread) within one loop iteration.
    for _ in range(3):
        await asyncio.sleep(0)


async def test_interactive_work_runs_before_bulk_work_queued_earlier() -> None:
    pool = CpuPool(1, "test-cpu")
    release = threading.Event()
    ran: list[str] = []

    def blocker() -> str:
        release.wait(10)
        return "blocker"

    def work(name: str) -> Callable[[], str]:
        def record() -> str:
            ran.append(name)
            return name

        return record

    busy = asyncio.create_task(_in_lane("bulk", pool, blocker))
    await _let_tasks_queue()
    bulk = [asyncio.create_task(_in_lane("bulk", pool, work(f"bulk-{index}"))) for index in range(10)]
    await _let_tasks_queue()
    interactive = asyncio.create_task(_in_lane("interactive", pool, work("interactive")))
    await _let_tasks_queue()
    release.set()
    results = await asyncio.gather(busy, *bulk, interactive)
    pool.close()
    assert ran == ["interactive", *(f"bulk-{index}" for index in range(10))]
    assert results[-1] == "interactive"


async def test_errors_reach_the_caller_and_free_the_thread() -> None:
    pool = CpuPool(1, "test-cpu")

    def fail() -> None:
        raise ValueError("bad pixels")

    with pytest.raises(ValueError, match="bad pixels"):
        await pool.run(fail)
    assert await asyncio.wait_for(pool.run(lambda: 42), 5) == 42
    pool.close()


async def test_cancelled_waiter_does_not_hold_a_thread() -> None:
    pool = CpuPool(1, "test-cpu")
    release = threading.Event()
    busy = asyncio.create_task(pool.run(lambda: release.wait(10)))
    await _let_tasks_queue()
    waiting = asyncio.create_task(pool.run(lambda: "never"))
    await _let_tasks_queue()
    waiting.cancel()
    release.set()
    await busy
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.wait_for(pool.run(lambda: "next"), 5) == "next"
    pool.close()


async def test_close_drops_queued_work() -> None:
    pool = CpuPool(1, "test-cpu")
    release = threading.Event()

    def finish() -> str:
        release.wait(10)
        return "finished"

    busy = asyncio.create_task(pool.run(finish))
    await _let_tasks_queue()
    queued = asyncio.create_task(pool.run(lambda: "dropped"))
    await _let_tasks_queue()
    release.set()
    pool.close()
    assert await busy == "finished"
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(RuntimeError, match="closed"):
        await pool.run(lambda: "late")


def _counted(pool: str) -> float:
    return REGISTRY.get_sample_value("pixtools_cpu_pool_seconds_total", {"pool": pool}) or 0.0


async def test_the_pool_counts_the_cpu_its_work_spends_not_the_time_it_waits() -> None:
    with CpuPool(2, "test-cpu-counted") as pool:
        before = _counted("test-cpu-counted")
        # Waiting on a pool thread (I/O, a lock, the GIL) is not CPU work.
        await pool.run(lambda: time.sleep(0.3))
        after_sleep = _counted("test-cpu-counted")

        def spin() -> float:
            started = time.thread_time()
            while time.thread_time() - started < 0.2:
                pass
            return time.thread_time() - started

        spent = sum(await asyncio.gather(pool.run(spin), pool.run(spin)))
        after_spin = _counted("test-cpu-counted")
    assert after_sleep - before < 0.05
    # Both threads' CPU, as each thread's own clock measured it.
    assert after_spin - after_sleep == pytest.approx(spent, abs=0.02)
