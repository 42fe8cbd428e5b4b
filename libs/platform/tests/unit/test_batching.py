import asyncio
import threading
import time

import pytest
from prometheus_client import REGISTRY

from pixtools_platform.batching import BatcherClosed, MicroBatcher


class RecordingBatch:
    """A batch function that doubles numbers, records each batch and the thread it ran on, and fails on -1."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()
        self.delay_s = delay_s

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.threads.add(threading.get_ident())
        time.sleep(self.delay_s)
        if -1 in items:
            raise ValueError("bad item in batch")
        return [item * 2 for item in items]


async def started(run_batch: RecordingBatch, *, max_batch: int, max_wait_s: float, name: str) -> MicroBatcher[int, int]:
    batcher: MicroBatcher[int, int] = MicroBatcher(run_batch, max_batch=max_batch, max_wait_s=max_wait_s, name=name)
    await batcher.start()
    return batcher


async def test_concurrent_submits_share_one_batch_on_a_worker_thread() -> None:
    run_batch = RecordingBatch()
    batcher = await started(run_batch, max_batch=8, max_wait_s=0.2, name="share")

    results = await asyncio.gather(*(batcher.submit(value) for value in range(5)))
    await batcher.close()

    assert results == [0, 2, 4, 6, 8]
    assert run_batch.batches == [[0, 1, 2, 3, 4]]
    assert threading.get_ident() not in run_batch.threads


async def test_full_batch_is_dispatched_without_waiting_and_capped_at_max_batch() -> None:
    run_batch = RecordingBatch()
    batcher = await started(run_batch, max_batch=4, max_wait_s=10.0, name="cap")

    started_at = time.monotonic()
    first = asyncio.ensure_future(batcher.submit_many(list(range(8))))
    results = await asyncio.wait_for(first, timeout=5)
    elapsed = time.monotonic() - started_at
    await batcher.close()

    assert results == [value * 2 for value in range(8)]
    assert run_batch.batches == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert elapsed < 5


async def test_lone_item_is_dispatched_after_max_wait() -> None:
    run_batch = RecordingBatch()
    batcher = await started(run_batch, max_batch=64, max_wait_s=0.05, name="lone")

    started_at = time.monotonic()
    result = await batcher.submit(21)
    elapsed = time.monotonic() - started_at
    await batcher.close()

    assert result == 42
    assert 0.04 <= elapsed < 2.0


async def test_failing_batch_fails_only_its_own_callers() -> None:
    run_batch = RecordingBatch()
    batcher = await started(run_batch, max_batch=2, max_wait_s=0.05, name="fail")

    good, bad = await asyncio.gather(batcher.submit_many([1, 2]), batcher.submit_many([-1, 3]), return_exceptions=True)
    after = await batcher.submit(5)
    await batcher.close()

    assert good == [2, 4]
    assert isinstance(bad, ValueError)
    assert after == 10


async def test_batch_function_returning_the_wrong_count_fails_the_batch() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: [], max_batch=4, max_wait_s=0.01, name="count")
    await batcher.start()

    with pytest.raises(RuntimeError, match="returned 0 results for 1"):
        await batcher.submit(1)
    await batcher.close()


async def test_close_drains_pending_items_without_waiting_out_max_wait() -> None:
    run_batch = RecordingBatch(delay_s=0.05)
    batcher = await started(run_batch, max_batch=2, max_wait_s=30.0, name="drain")

    pending = asyncio.ensure_future(batcher.submit_many([1, 2, 3]))
    await asyncio.sleep(0.01)
    started_at = time.monotonic()
    await batcher.close()

    assert pending.done()
    assert pending.result() == [2, 4, 6]
    assert time.monotonic() - started_at < 5
    with pytest.raises(BatcherClosed):
        await batcher.submit(4)


async def test_submit_before_start_is_refused() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(RecordingBatch(), max_batch=2, max_wait_s=0.01, name="unstarted")

    with pytest.raises(BatcherClosed, match="unstarted"):
        await batcher.submit(1)


async def test_cancelled_items_are_skipped_before_they_run() -> None:
    run_batch = RecordingBatch()
    batcher = await started(run_batch, max_batch=16, max_wait_s=0.2, name="cancel")

    doomed = asyncio.ensure_future(batcher.submit_many([7, 8]))
    await asyncio.sleep(0)
    doomed.cancel()
    kept = await batcher.submit(9)
    await batcher.close()

    assert kept == 18
    assert run_batch.batches == [[9]]


async def test_metrics_count_batches_items_and_forward_time_by_name() -> None:
    batcher = await started(RecordingBatch(), max_batch=3, max_wait_s=0.05, name="metered")

    await batcher.submit_many(list(range(7)))
    await batcher.close()

    labels = {"name": "metered"}
    assert REGISTRY.get_sample_value("pixtools_batch_items_total", labels) == 7
    assert REGISTRY.get_sample_value("pixtools_batch_size_count", labels) == 3
    assert REGISTRY.get_sample_value("pixtools_batch_size_sum", labels) == 7
    assert REGISTRY.get_sample_value("pixtools_batch_wait_seconds_count", labels) == 3
    assert REGISTRY.get_sample_value("pixtools_batch_forward_seconds_count", labels) == 3


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(RecordingBatch(), max_batch=0, max_wait_s=0.01, name="invalid")
    with pytest.raises(ValueError, match="max_wait_s"):
        MicroBatcher(RecordingBatch(), max_batch=1, max_wait_s=-1, name="invalid")
