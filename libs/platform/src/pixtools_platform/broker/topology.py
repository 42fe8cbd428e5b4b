"""Exchanges and queues: one durable quorum queue per service, its delay tiers and its dead-letter queue."""

from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection, ExchangeType

from pixtools_platform.broker.retry import RetryPolicy

DELIVERY_LIMIT = 10
"""Deliveries the broker allows a message before dead-lettering it itself (worker crashes count too)."""

JOURNAL_KEYS = ("job.#", "objects.#")
CANCELLED_KEY = "job.cancelled.v1"
JOURNAL_LENGTH = 100_000
JOURNAL_TTL_MS = 7 * 24 * 3600 * 1000

CANCELLATIONS_MAX_AGE_S = 7 * 24 * 3600
"""How long the cancellations stream keeps a cancellation; a fixed name-wide value, since every declarer must agree."""
CANCELLATIONS_SEGMENT_BYTES = 1_000_000
"""Stream segment size: retention drops whole segments, so small ones let old cancellations actually expire."""


@dataclass(frozen=True)
class Topology:
    """Names of every exchange and queue, under one namespace."""

    namespace: str = "pixtools"

    @property
    def events(self) -> str:
        """Topic exchange carrying every event and step command."""
        return f"{self.namespace}.events"

    @property
    def dead_letters(self) -> str:
        """Direct exchange routing dead letters to each service's dead-letter queue."""
        return f"{self.namespace}.dlx"

    @property
    def redeliver(self) -> str:
        """Direct exchange returning delayed messages to their service queue."""
        return f"{self.namespace}.redeliver"

    @property
    def journal(self) -> str:
        """A bounded queue keeping recent notifications, so an event with no subscriber yet is still routable."""
        return f"{self.namespace}.journal"

    @property
    def cancellations(self) -> str:
        """A stream of every job cancellation, which each stage replica reads from the start."""
        return f"{self.namespace}.cancellations"

    def queue(self, service: str) -> str:
        """The service's work queue."""
        return f"{self.namespace}.{service}"

    def dead_letter_queue(self, service: str) -> str:
        """Where the service's poison and exhausted messages wait for inspection."""
        return f"{self.namespace}.{service}.dlq"

    def delay_queue(self, service: str, tier_ms: int) -> str:
        """A holding queue whose messages return to the service after at most `tier_ms`."""
        return f"{self.namespace}.{service}.delay.{tier_ms}ms"

    async def declare_exchanges(self, channel: AbstractChannel) -> AbstractExchange:
        """Declare the shared exchanges and return the events exchange."""
        await channel.declare_exchange(self.dead_letters, ExchangeType.DIRECT, durable=True)
        await channel.declare_exchange(self.redeliver, ExchangeType.DIRECT, durable=True)
        events = await channel.declare_exchange(self.events, ExchangeType.TOPIC, durable=True)
        journal = await channel.declare_queue(
            self.journal,
            durable=True,
            arguments={"x-max-length": JOURNAL_LENGTH, "x-overflow": "drop-head", "x-message-ttl": JOURNAL_TTL_MS},
        )
        # Notifications (job.*, objects.*) may have no subscriber yet; commands
        # (step.requested.*) are deliberately not journalled, so a command nobody consumes stays an error.
        for key in JOURNAL_KEYS:
            await journal.bind(events, routing_key=key)
        # Declared with the exchanges, so a cancellation published before any stage starts is still kept.
        cancellations = await channel.declare_queue(
            self.cancellations,
            durable=True,
            arguments={
                "x-queue-type": "stream",
                "x-max-age": f"{CANCELLATIONS_MAX_AGE_S}s",
                "x-stream-max-segment-size-bytes": CANCELLATIONS_SEGMENT_BYTES,
            },
        )
        await cancellations.bind(events, routing_key=CANCELLED_KEY)
        return events

    async def declare_service(
        self,
        channel: AbstractChannel,
        service: str,
        routing_keys: Sequence[str],
        retry: RetryPolicy,
        delivery_limit: int = DELIVERY_LIMIT,
    ) -> AbstractQueue:
        """Declare a service's queue, bindings, delay tiers and dead-letter queue; return the work queue."""
        events = await self.declare_exchanges(channel)
        dead_letters = await channel.get_exchange(self.dead_letters)
        redeliver = await channel.get_exchange(self.redeliver)
        dead_letter_queue = await channel.declare_queue(
            self.dead_letter_queue(service), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead_letter_queue.bind(dead_letters, routing_key=service)
        queue = await channel.declare_queue(
            self.queue(service),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                # The broker counts every redelivery, including crashes, so a message that kills workers ends here.
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": self.dead_letters,
                "x-dead-letter-routing-key": service,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        for key in routing_keys:
            await queue.bind(events, routing_key=key)
        await queue.bind(redeliver, routing_key=service)
        for tier in retry.tiers_ms():
            await channel.declare_queue(
                self.delay_queue(service, tier),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": tier,
                    "x-dead-letter-exchange": self.redeliver,
                    "x-dead-letter-routing-key": service,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
        return queue


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """Open a robust connection that reconnects and restores its channels."""
    return await aio_pika.connect_robust(url, client_properties={"connection_name": name})
