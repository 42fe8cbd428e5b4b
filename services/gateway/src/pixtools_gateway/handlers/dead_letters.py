"""Dead letters: list them, replay them to their work queue, or discard them."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_contracts import SourceRequested, StepRequested
from pixtools_db.outbox import add_events
from pixtools_gateway.adapters.admin_broker import AdminBroker
from pixtools_gateway.admin_models import (
    CONSUMER_QUEUES,
    ConsumerQueue,
    DeadLetterList,
    DeadLetterQueueView,
    DeadLetterSelection,
    DiscardResult,
    ReplayResult,
)
from pixtools_gateway.errors import NotFound, Problem
from pixtools_gateway.handlers.dead_letter_headers import describe, parse_body, replayable
from pixtools_gateway.handlers.reopen import reopen_source, reopen_steps
from pixtools_platform.broker import Unroutable

Settle = Callable[[AbstractIncomingMessage, ConsumerQueue], Awaitable[bool]]
"""Acts on one selected dead letter; True when it was settled (removed), False when it stays."""


class ReplayUnroutable(Problem):
    """A dead letter could not be republished: no queue takes its routing key."""

    status, slug, title = 409, "replay-unroutable", "Replay not routable"


async def list_dead_letters(broker: AdminBroker, *, services: Sequence[ConsumerQueue], limit: int) -> DeadLetterList:
    """The first `limit` dead letters of each service queue, read without taking them away."""

    async def read(service: ConsumerQueue) -> DeadLetterQueueView:
        name = broker.topology.dead_letter_queue(service)
        messages = []
        async with broker.open_queue(name) as opened:
            for _ in range(min(limit, opened.depth.ready)):
                message = await opened.take()
                if message is None:
                    break
                messages.append(describe(message, service, name))
            return DeadLetterQueueView(service=service, queue=name, count=opened.depth.ready, messages=messages)

    queues = await asyncio.gather(*(read(service) for service in services))
    return DeadLetterList(queues=list(queues), total=sum(queue.count for queue in queues))


async def replay_dead_letters(
    broker: AdminBroker,
    sessions: async_sessionmaker[AsyncSession],
    selection: DeadLetterSelection,
) -> ReplayResult:
    """Send the selected dead letters back to their work queue, then remove them.

    A step command's step was recorded as failed when it died, so the step is reopened first (a fetch
    command's job waits for its source again); otherwise the aggregator would ignore the result. The reopen
    and a copy of the command (a new event id) commit together in the outbox, and the dead letter goes only
    after that commit, so a crash in between at worst runs the step twice. A command whose job is gone,
    cancelled or has nothing left to run stays where it is. Other messages (the aggregator's step events)
    change no state and are republished directly with confirms.
    """
    replayed = skipped = 0
    async with broker.publisher() as publisher:

        async def replay(message: AbstractIncomingMessage, service: ConsumerQueue) -> bool:
            nonlocal replayed, skipped
            event = parse_body(message.body)
            if isinstance(event, StepRequested | SourceRequested):
                command = event.model_copy(update={"event_id": uuid.uuid4()})
                async with sessions.begin() as session:
                    if isinstance(event, StepRequested):
                        reopened = await reopen_steps(session, job_id=event.job_id, step_ids={event.step.id})
                    else:
                        reopened = await reopen_source(session, job_id=event.job_id)
                    if not reopened:
                        skipped += 1
                        return False
                    add_events(session, [command])
            else:
                dead = describe(message, service, broker.topology.dead_letter_queue(service))
                try:
                    await publisher.publish_message(
                        service, replayable(message, dead), exchange=broker.topology.redeliver
                    )
                except Unroutable as error:
                    raise ReplayUnroutable(f"{error}; replayed {replayed} before this one, the rest stay") from error
            await message.ack()
            replayed += 1
            return True

        await _each_selected(broker, selection, replay)
    return ReplayResult(replayed=replayed, skipped=skipped)


async def discard_dead_letters(broker: AdminBroker, selection: DeadLetterSelection) -> DiscardResult:
    """Remove the selected dead letters for good."""

    async def discard(message: AbstractIncomingMessage, service: ConsumerQueue) -> bool:
        await message.ack()
        return True

    return DiscardResult(discarded=await _each_selected(broker, selection, discard))


async def _each_selected(broker: AdminBroker, selection: DeadLetterSelection, settle: Settle) -> int:
    """Apply `settle` to each selected dead letter; returns how many it settled. Unsettled ones go back in order."""
    services: Sequence[ConsumerQueue] = [selection.service] if selection.service else CONSUMER_QUEUES
    settled = 0
    for service in services:
        async with broker.open_queue(broker.topology.dead_letter_queue(service)) as opened:
            # Bounded by the depth at opening, so a replayed message that dies again at once is not met twice.
            for _ in range(opened.depth.ready):
                message = await opened.take()
                if message is None:
                    break
                if selection.message_id is not None and message.message_id != selection.message_id:
                    continue
                settled += await settle(message, service)
                if selection.message_id is not None:
                    return settled
    if selection.message_id is not None:
        where = f"the {selection.service} dead-letter queue" if selection.service else "any dead-letter queue"
        raise NotFound(f"no message {selection.message_id} in {where}")
    return settled
