"""The shape every stage worker shares: broker, storage, a consumer per lane, ops endpoints, draining stop."""

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection

from pixtools_contracts import Event, StepRequested, step_failed
from pixtools_platform.blobstore import BlobStore, open_blob_store
from pixtools_platform.broker import Consumer, Handler, PermanentError, Publisher, Topology, connect
from pixtools_platform.broker.consumer import ExhaustedHook
from pixtools_platform.cancellations import CancelledJobs, skip_cancelled
from pixtools_platform.lanes import LANES, CpuPool, in_lane, lane_routing_keys, lane_service
from pixtools_platform.ops import Check, OpsServer
from pixtools_platform.settings import CommonSettings

__all__ = ["CpuPool", "StageWorker", "Wire", "Wiring", "gave_up_hook", "step_request_handlers"]


@dataclass(frozen=True)
class Wiring:
    """What a stage hands the worker once connected: its handlers, its give-up hook, extra readiness checks."""

    handlers: Mapping[str, Handler]
    on_exhausted: ExhaustedHook | None = None
    checks: Mapping[str, Check] | None = None


Wire = Callable[[BlobStore, Publisher], Awaitable[Wiring]]
"""Builds a stage's handlers from the opened storage and publisher (and loads its models)."""


class StageWorker:
    """Consumes a service's interactive and bulk queues until stopped; the stage supplies only its handlers.

    Before taking work it reads the cancellations stream to its end, and from then on it skips the
    messages of cancelled jobs (see `pixtools_platform.cancellations`).
    """

    def __init__(
        self,
        settings: CommonSettings,
        *,
        service: str,
        routing_keys: Sequence[str],
        wire: Wire,
        release: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self._service = service
        self._routing_keys = routing_keys
        self._wire = wire
        self._release = release
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        self._blobs: BlobStore | None = None
        self._consumers: list[Consumer] = []
        self._ops: OpsServer | None = None
        self.cancelled = CancelledJobs(Topology(settings.namespace), limit=settings.cancelled_jobs_limit)

    async def start(self) -> None:
        """Connect, wire the stage, catch up with cancellations, declare its queues and start consuming."""
        settings = self.settings
        topology = Topology(settings.namespace)
        self._connection = await connect(settings.amqp_url, self._service)
        self._publisher = await Publisher.open(self._connection, topology)
        self._blobs = await open_blob_store(settings)
        wiring = await self._wire(self._blobs, self._publisher)
        await self.cancelled.start(self._connection, self._publisher, timeout_s=settings.cancellation_catch_up_s)
        handlers = {
            event_type: skip_cancelled(handler, self.cancelled, self._service)
            for event_type, handler in wiring.handlers.items()
        }
        for lane in LANES:
            consumer = Consumer(
                connection=self._connection,
                publisher=self._publisher,
                topology=topology,
                service=lane_service(self._service, lane),
                routing_keys=lane_routing_keys(self._routing_keys, lane),
                handlers={event_type: in_lane(lane, handler) for event_type, handler in handlers.items()},
                retry=settings.retry,
                # Few bulk messages per replica: a batch cannot take the slots a single job needs.
                prefetch=settings.bulk_prefetch if lane == "bulk" else settings.prefetch,
                on_exhausted=wiring.on_exhausted,
            )
            await consumer.start()
            self._consumers.append(consumer)
        if settings.ops_port:
            checks: dict[str, Check] = {
                "broker": functools.partial(_connection_open, self._connection),
                "storage": self._blobs.check,
                **(wiring.checks or {}),
            }
            self._ops = OpsServer(settings.ops_host, settings.ops_port, checks)
            await self._ops.start()

    async def stop(self) -> None:
        """Drain in-flight messages, then release everything in reverse order."""
        await asyncio.gather(*(consumer.stop(self.settings.drain_seconds) for consumer in self._consumers))
        await self.cancelled.stop()
        if self._ops is not None:
            await self._ops.stop()
        if self._release is not None:
            await self._release()
        if self._publisher is not None:
            await self._publisher.close()
        if self._connection is not None:
            await self._connection.close()
        if self._blobs is not None:
            await self._blobs.close()


async def _connection_open(connection: AbstractRobustConnection) -> None:
    if connection.is_closed:
        raise ConnectionError("broker connection is closed")


def step_request_handlers(run: Callable[[StepRequested], Awaitable[Sequence[Event]]]) -> dict[str, Handler]:
    """The handler map of a stage service: every step request goes to `run`."""

    async def on_step_requested(event: Event) -> Sequence[Event]:
        if not isinstance(event, StepRequested):
            raise PermanentError(f"expected a step request, got {event.type}")
        return await run(event)

    return {"step.requested.v1": on_step_requested}


def gave_up_hook(producer: str) -> ExhaustedHook:
    """A request that is dead-lettered still ends its step, so the job does not wait forever."""

    async def on_exhausted(event: Event, reason: str) -> Sequence[Event]:
        if isinstance(event, StepRequested):
            return [step_failed(event, "step.gave_up", reason, producer)]
        return []

    return on_exhausted
