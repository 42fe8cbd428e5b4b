"""Another team's subscriber: its own queue, bound to job.completed.v1, printing each result.

It depends only on `pixtools-contracts` (for the typed event) and an AMQP client, and reads the
exchange and routing key from the AsyncAPI document rather than hard-coding them.

    pip install ./libs/contracts aio-pika
    python examples/subscriber/subscribe.py --asyncapi http://localhost:8000/asyncapi.json
"""

import argparse
import asyncio
import json
import urllib.request
from typing import Any

import aio_pika

from pixtools_contracts import JobCompleted


def load_asyncapi(source: str) -> dict[str, Any]:
    """Read the AsyncAPI document from a URL or a file."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:
            document: dict[str, Any] = json.load(response)
            return document
    with open(source) as handle:
        document = json.load(handle)
        return document


def channel_binding(document: dict[str, Any], event_type: str) -> tuple[str, str]:
    """The exchange name and routing key of an event type's channel."""
    channel = document["channels"][event_type]
    return channel["bindings"]["amqp"]["exchange"]["name"], channel["address"]


async def subscribe(amqp_url: str, queue_name: str, exchange_name: str, routing_key: str, limit: int | None) -> None:
    """Declare our own durable queue, bind it, and print each completed job until stopped."""
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, passive=True
        )
        queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, routing_key=routing_key)
        print(f"listening on {queue_name} <- {exchange_name} [{routing_key}]")
        seen = 0
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    event = JobCompleted.model_validate_json(message.body)
                    outputs = ", ".join(f"{output.content_type} {output.bytes} B" for output in event.outputs)
                    print(f"job {event.job_id} {event.state}: {outputs}")
                seen += 1
                if limit is not None and seen >= limit:
                    return


def main() -> None:
    """Parse arguments and subscribe."""
    parser = argparse.ArgumentParser(description="Print PixTools job.completed.v1 events.")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    parser.add_argument("--asyncapi", default="http://localhost:8000/asyncapi.json", help="URL or path")
    parser.add_argument("--queue", default="example-team.job-completed", help="your team's own queue")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many events")
    parser.add_argument("--exchange", default=None, help="override the exchange name (test namespaces)")
    args = parser.parse_args()
    exchange, routing_key = channel_binding(load_asyncapi(args.asyncapi), "job.completed.v1")
    exchange = args.exchange or exchange
    asyncio.run(subscribe(args.amqp_url, args.queue, exchange, routing_key, args.limit))


if __name__ == "__main__":
    main()
