"""Upgrades a namespace's journal over and over, from the retired queue to the current one, until it is killed.

Each round first puts the namespace back as `main` left it (only the retired journal bound), then declares the
topology as a service does at start; the test SIGKILLs this process at an arbitrary point of a round.

    python journal_upgrader.py AMQP_URL NAMESPACE
"""

import asyncio
import sys

import aio_pika
from aio_pika.abc import AbstractChannel, ExchangeType

from pixtools_platform.broker.topology import JOURNAL_KEYS, JOURNAL_LENGTH, JOURNAL_TTL_MS, Topology


async def declare_retired_journal(channel: AbstractChannel, topology: Topology) -> None:
    """Declare and bind the journal exactly as it was before storage version 2, as existing brokers hold it."""
    events = await channel.declare_exchange(topology.events, ExchangeType.TOPIC, durable=True)
    journal = await channel.declare_queue(
        topology.retired_journal,
        durable=True,
        arguments={"x-max-length": JOURNAL_LENGTH, "x-overflow": "drop-head", "x-message-ttl": JOURNAL_TTL_MS},
    )
    for key in JOURNAL_KEYS:
        await journal.bind(events, routing_key=key)


async def upgrade_forever(url: str, namespace: str) -> None:
    """Go back to the retired journal alone, then upgrade, round after round."""
    topology = Topology(namespace)
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    print("upgrading", flush=True)
    while True:
        await declare_retired_journal(channel, topology)
        await channel.queue_delete(topology.journal)
        await topology.declare_exchanges(channel)


if __name__ == "__main__":
    asyncio.run(upgrade_forever(sys.argv[1], sys.argv[2]))
