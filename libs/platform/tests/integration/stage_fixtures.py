"""A stage worker around a test handler, and the step requests to feed it, on a real broker."""

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from pixtools_contracts import JobCancelled, Lane, ObjectRef, Pipeline, StepRequested, StepStarted, first_steps, plan
from pixtools_platform.broker import Handler
from pixtools_platform.cancellations import CancelledJobs
from pixtools_platform.service import Service, blob_store, broker
from pixtools_platform.settings import CommonSettings
from pixtools_platform.stage import Stage, consume_stage
from pixtools_testkit.fixtures import TEST_RETRY
from pixtools_testkit.infra import Infra

SERVICE = "ingest"
ROUTING_KEYS = ("step.requested.v1.ingest",)
TENANT = uuid.uuid4()


def stage_settings(infra: Infra, namespace: str, blob_dir: Path, **overrides: object) -> CommonSettings:
    """Settings of a stage on the test broker and namespace, with the fast test retry policy."""
    values: dict[str, object] = {
        "amqp_url": infra.amqp_url,
        "namespace": namespace,
        "blob_backend": "local",
        "blob_dir": blob_dir,
        "retry": TEST_RETRY,
        "drain_seconds": 5.0,
        "cancellation_catch_up_s": 15.0,
        **overrides,
    }
    return CommonSettings.model_validate(values)


class StageWorker(Service):
    """A stage service for SERVICE whose every step request goes to `handler`; `cancelled` is what it knows."""

    cancelled: CancelledJobs

    def __init__(self, settings: CommonSettings, handler: Handler) -> None:
        super().__init__(SERVICE, self._compose)
        self._settings = settings
        self._handler = handler

    async def _compose(self, resources: AsyncExitStack) -> None:
        blobs = await resources.enter_async_context(blob_store(self._settings))
        messages = await resources.enter_async_context(broker(self._settings, SERVICE))
        stage = Stage(SERVICE, {"step.requested.v1": self._handler})
        assert stage.routing_keys == list(ROUTING_KEYS)
        self.cancelled = await consume_stage(resources, self._settings, broker=messages, blobs=blobs, stage=stage)


def stage_worker(settings: CommonSettings, handler: Handler) -> StageWorker:
    """A worker for SERVICE whose every step request goes to `handler`."""
    return StageWorker(settings, handler)


def step_request(job_id: uuid.UUID | None = None, *, lane: Lane = "interactive") -> StepRequested:
    """A request for the first step of a two-step job: metadata on SERVICE, then detect."""
    [(step, rest)] = first_steps(plan(Pipeline.model_validate([{"op": "metadata"}, {"op": "detect"}])))
    return StepRequested(
        job_id=job_id or uuid.uuid4(),
        tenant_id=TENANT,
        correlation_id="c",
        producer="test",
        service=SERVICE,
        input=ObjectRef(key="k", content_type="image/png", bytes=1, sha256="0" * 64),
        step=step,
        remaining=rest,
        lane=lane,
    )


def next_request(request: StepRequested) -> StepRequested:
    """The command a stage returns after `request`: the job's detect step."""
    [(step, rest)] = first_steps(request.remaining)
    return request.model_copy(update={"event_id": uuid.uuid4(), "service": "detect", "step": step, "remaining": rest})


def started(request: StepRequested) -> StepStarted:
    """A notification about `request`'s step."""
    return StepStarted(
        job_id=request.job_id,
        tenant_id=request.tenant_id,
        correlation_id="c",
        producer="test",
        step_id=request.step.id,
        op=request.step.spec.op,
    )


def cancelled(job_id: uuid.UUID) -> JobCancelled:
    """The gateway's cancellation of a job."""
    return JobCancelled(job_id=job_id, tenant_id=TENANT, correlation_id="c", producer="gateway")


async def wait_until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    """Return once `condition()` holds; fail the test if it never does within `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def queue_length(connection: AbstractRobustConnection, name: str) -> int:
    """Ready messages in a queue (unacked ones are not counted)."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        count = queue.declaration_result.message_count
        return count if count is not None else 0
    finally:
        await channel.close()


async def take_messages(
    connection: AbstractRobustConnection, name: str, expected: int = 1, seconds: float = 15.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take messages from a queue until `expected` arrived or `seconds` passed."""
    channel = await connection.channel()
    try:
        queue = await channel.get_queue(name)
        found: list[aio_pika.abc.AbstractIncomingMessage] = []
        deadline = time.monotonic() + seconds
        while len(found) < expected and time.monotonic() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            found.append(message)
        return found
    finally:
        await channel.close()
