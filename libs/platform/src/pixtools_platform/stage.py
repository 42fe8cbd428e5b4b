"""What every stage worker shares: a consumer per lane, cancelled jobs skipped, ops endpoints, a give-up hook."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

from pixtools_contracts import Event, StepRequested, step_failed
from pixtools_platform.blobstore import BlobStore
from pixtools_platform.broker import Consumer
from pixtools_platform.broker.consumer import ExhaustedHook
from pixtools_platform.cancellations import CancelledJobs, skip_cancelled
from pixtools_platform.lanes import LANES, CpuPool, in_lane, lane_routing_keys, lane_service
from pixtools_platform.ops import Check
from pixtools_platform.routing import Routes, command_routing_keys
from pixtools_platform.service import Broker, Consuming, ops_server
from pixtools_platform.settings import CommonSettings

__all__ = ["CpuPool", "Stage", "consume_stage", "gave_up_hook"]


@dataclass(frozen=True)
class Stage:
    """What a stage consumes: its routes (commands addressed to `service`) and what to publish when one gives up."""

    service: str
    routes: Routes
    on_exhausted: ExhaustedHook | None = None

    @property
    def routing_keys(self) -> list[str]:
        """The command routing keys of the routed types, before lanes."""
        return command_routing_keys(self.routes, self.service)


async def consume_stage(
    resources: AsyncExitStack,
    settings: CommonSettings,
    *,
    broker: Broker,
    blobs: BlobStore,
    stage: Stage,
    checks: Mapping[str, Check] | None = None,
) -> CancelledJobs:
    """Enter the ops endpoints, the cancellations stream and a consumer per lane, in that order.

    Before taking work the stage reads the cancellations stream to its end, and from then on it skips
    the messages of cancelled jobs (see `pixtools_platform.cancellations`). Closing the stack drains the
    consumers first (within `drain_seconds`), then stops following cancellations, then the ops endpoints.
    """
    consuming = Consuming()
    all_checks = {"broker": broker.check, "storage": blobs.check, **(checks or {}), "consumers": consuming.check}
    await resources.enter_async_context(ops_server(settings, all_checks))
    cancelled = await resources.enter_async_context(_following_cancellations(settings, broker))
    await resources.enter_async_context(_consuming_lanes(settings, broker, stage, cancelled, consuming))
    return cancelled


@contextlib.asynccontextmanager
async def _following_cancellations(settings: CommonSettings, broker: Broker) -> AsyncIterator[CancelledJobs]:
    cancelled = CancelledJobs(broker.topology, limit=settings.cancelled_jobs_limit)
    await cancelled.start(broker.connection, broker.publisher, timeout_s=settings.cancellation_catch_up_s)
    try:
        yield cancelled
    finally:
        await cancelled.stop()


@contextlib.asynccontextmanager
async def _consuming_lanes(
    settings: CommonSettings, broker: Broker, stage: Stage, cancelled: CancelledJobs, consuming: Consuming
) -> AsyncIterator[None]:
    routes = {kind: skip_cancelled(handler, cancelled, stage.service) for kind, handler in stage.routes.items()}
    consumers: list[Consumer] = []
    try:
        for lane in LANES:
            consumer = Consumer(
                connection=broker.connection,
                publisher=broker.publisher,
                topology=broker.topology,
                service=lane_service(stage.service, lane),
                routing_keys=lane_routing_keys(stage.routing_keys, lane),
                handlers={event_type: in_lane(lane, handler) for event_type, handler in routes.items()},
                retry=settings.retry,
                # Few bulk messages per replica: a batch cannot take the slots a single job needs.
                prefetch=settings.bulk_prefetch if lane == "bulk" else settings.prefetch,
                on_exhausted=stage.on_exhausted,
            )
            await consumer.start()
            consumers.append(consumer)
        consuming.mark(running=True)
        yield
    finally:
        consuming.mark(running=False)
        await asyncio.gather(*(consumer.stop(settings.drain_seconds) for consumer in consumers))


def gave_up_hook(producer: str) -> ExhaustedHook:
    """A request that is dead-lettered still ends its step, so the job does not wait forever."""

    async def on_exhausted(event: Event, reason: str) -> Sequence[Event]:
        if isinstance(event, StepRequested):
            return [step_failed(event, "step.gave_up", reason, producer)]
        return []

    return on_exhausted
