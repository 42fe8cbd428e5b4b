"""Another team's subscriber, written with FastStream: its own quorum queue bound to job.completed.v1.

It needs only `pixtools-contracts` (the typed event) and `faststream[rabbit]`. The exchange and queue come
from the deployment's settings, like every PixTools service (`PIXTOOLS_AMQP_URL`, `PIXTOOLS_NAMESPACE`,
or `PIXTOOLS_EVENTS_EXCHANGE` to name the exchange outright), or from the gateway's AsyncAPI document:

    pip install ./libs/contracts "faststream[rabbit]"
    PIXTOOLS_NAMESPACE=pixtools python examples/subscriber/subscribe_faststream.py
    python examples/subscriber/subscribe_faststream.py --asyncapi http://localhost:8000/asyncapi.json
"""

import argparse
import asyncio
import json
import os
import urllib.request
from dataclasses import dataclass
from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from pixtools_contracts import DEFAULT_NAMESPACE, JobCompleted, events_exchange, example_queue

EVENT_TYPE = "job.completed.v1"


@dataclass(frozen=True)
class Names:
    """Where to listen: the broker, the events exchange, our own queue and the routing key."""

    amqp_url: str
    exchange: str
    queue: str
    routing_key: str = EVENT_TYPE


def names_from_settings(environ: dict[str, str]) -> Names:
    """The names a deployment's PIXTOOLS_* settings imply."""
    namespace = environ.get("PIXTOOLS_NAMESPACE", DEFAULT_NAMESPACE)
    return Names(
        amqp_url=environ.get("PIXTOOLS_AMQP_URL", "amqp://guest:guest@localhost:5672/"),
        exchange=environ.get("PIXTOOLS_EVENTS_EXCHANGE", events_exchange(namespace)),
        queue=environ.get("PIXTOOLS_SUBSCRIBER_QUEUE", example_queue(namespace, EVENT_TYPE)),
    )


def names_from_asyncapi(document: dict[str, Any], amqp_url: str) -> Names:
    """The names the served AsyncAPI document gives: its channel's exchange and address, and its example queue."""
    channel = document["channels"][EVENT_TYPE]
    operation = document["operations"][f"receive_{EVENT_TYPE}"]
    return Names(
        amqp_url=amqp_url,
        exchange=channel["bindings"]["amqp"]["exchange"]["name"],
        queue=operation["x-example-queue"],
        routing_key=channel["address"],
    )


def build_broker(names: Names, *, limit: int | None, done: asyncio.Event) -> RabbitBroker:
    """A broker with one subscriber that prints each completed job and how to fetch its outputs."""
    broker = RabbitBroker(names.amqp_url)
    queue = RabbitQueue(names.queue, queue_type=QueueType.QUORUM, durable=True, routing_key=names.routing_key)
    # The exchange belongs to PixTools: bind to it, never declare it (a wrong name fails instead of hearing nothing).
    exchange = RabbitExchange(names.exchange, type=ExchangeType.TOPIC, durable=True, declare=False)
    seen = 0

    @broker.subscriber(queue, exchange)
    async def on_job_completed(event: JobCompleted, message: RabbitMessage) -> None:
        nonlocal seen
        print(f"job {event.job_id} {event.state}: {len(event.outputs)} outputs", flush=True)
        for output in event.outputs:
            where = output.url or output.download_path or output.key
            print(f"  {output.content_type} {output.bytes} B  {where}", flush=True)
        print(f"payload {message.body.decode()}", flush=True)
        seen += 1
        if limit is not None and seen >= limit:
            done.set()

    return broker


async def subscribe(names: Names, limit: int | None) -> None:
    """Listen until `limit` events were handled (forever without one)."""
    done = asyncio.Event()
    broker = build_broker(names, limit=limit, done=done)
    async with broker:
        await broker.start()
        print(f"listening on {names.queue} <- {names.exchange} [{names.routing_key}]", flush=True)
        await done.wait()


def main() -> None:
    """Parse arguments and subscribe."""
    parser = argparse.ArgumentParser(description="Print PixTools job.completed.v1 events (FastStream).")
    parser.add_argument("--asyncapi", default=None, help="take the names from this AsyncAPI document URL or path")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many events")
    args = parser.parse_args()
    names = names_from_settings(dict(os.environ))
    if args.asyncapi:
        names = names_from_asyncapi(load_asyncapi(args.asyncapi), names.amqp_url)
    asyncio.run(subscribe(names, args.limit))


def load_asyncapi(source: str) -> dict[str, Any]:
    """Read the AsyncAPI document from a URL or a file."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:
            document: dict[str, Any] = json.load(response)
            return document
    with open(source) as handle:
        loaded: dict[str, Any] = json.load(handle)
        return loaded


if __name__ == "__main__":
    main()
