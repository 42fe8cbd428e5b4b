"""The client CPU of one confirmed, mandatory, persistent publish through `Publisher`, in one process.

Every job makes four such publishes (issue 12), so the cost of the path from an event to its confirm is paid four
times per job in the gateway, ingest and the aggregator. This bench runs that path alone against the real broker:
a fresh namespace (its exchanges, and one quorum queue bound to the events' routing key), the services' robust
connection and uvloop, and pre-built events so that only the publish is timed. For each path it reports the
process's CPU per publish (`time.process_time`, the loop's frame reading and writing included) and the wall time:

- `encode`: `encode_event` alone (the body's JSON and the message properties), no I/O;
- `publish_serial` / `publish_16`: `Publisher.publish(event)` one at a time, and from 16 concurrent publishers (a
  worker's prefetch) each publishing its share one at a time;
- `all_serial`: `Publisher.publish_all([event])` one at a time, as ingest publishes a one-step job's outcome;
- `json_serial` / `json_16`: `Publisher.publish_json`, the outbox relay's path, with the body already encoded;
- `floor_serial` / `floor_16`: aiormq's own `basic_publish` with prepared properties on the same channel, the
  part of a publish the wrapper cannot remove; the difference to `json_*` is what `Publisher` and aio-pika add.

Run it under the bench lock, from the worktree under test (paths alternate within a round, rounds repeat):

    flock /tmp/bench.lock .venv/bin/python bench/pipeline/publish_cost.py [--count 3000] [--rounds 3]

The queue is purged between paths and the namespace's exchanges and queues are deleted at the end.
"""

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiormq
import uvloop
from pamqp.commands import Basic

from pixtools_contracts import ObjectRef, StepCompleted, StepOutput
from pixtools_platform.broker import Publisher, Topology, connect, encode_event

ROUTING_KEY = "step.completed.v1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def step_completed() -> StepCompleted:
    """A `step.completed` of a one-step convert(webp) job, as ingest publishes it (about 900 bytes of JSON)."""
    job_id, tenant_id = uuid.uuid4(), uuid.uuid4()
    image = ObjectRef(
        key=f"jobs/{tenant_id}/{job_id}/steps/0/image.webp",
        content_type="image/webp",
        bytes=51234,
        sha256="b" * 64,
        width=800,
        height=450,
    )
    now = datetime.now(UTC)
    return StepCompleted(
        job_id=job_id,
        tenant_id=tenant_id,
        correlation_id=f"req-{uuid.uuid4().hex[:12]}",
        producer="ingest",
        traceparent=TRACEPARENT,
        step_id="0",
        op="convert",
        started_at=now,
        finished_at=now,
        image=image,
        outputs=[StepOutput(name="image", role="image", **image.model_dump())],
    )


async def timed(count: int, in_flight: int, publish_one: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    """CPU ms and wall ms per call of `publish_one(0..count-1)`, from `in_flight` tasks each awaiting its own."""

    async def worker(first: int) -> None:
        for number in range(first, count, in_flight):
            await publish_one(number)

    started_cpu, started_wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(first) for first in range(in_flight)))
    cpu = time.process_time() - started_cpu
    wall = time.perf_counter() - started_wall
    return cpu / count * 1000, wall / count * 1000


async def one_round(amqp_url: str, count: int) -> dict[str, float]:
    """Every path once, in a fresh namespace; returns CPU ms (and wall ms) per publish for each."""
    topology = Topology(f"bench_publisher_{uuid.uuid4().hex[:8]}")
    connection = await connect(amqp_url, "bench-publish-cost")
    figures: dict[str, float] = {}
    try:
        publisher = await Publisher.open(connection, topology)
        admin = await connection.channel()
        queue = await admin.declare_queue(
            f"{topology.namespace}.sink", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(topology.events, ROUTING_KEY)
        events = [step_completed() for _ in range(count)]

        started = time.process_time()
        for event in events:
            encode_event(event)
        figures["encode_cpu_ms"] = (time.process_time() - started) / count * 1000

        # Fresh ids for the relay's path too: aiormq finds a returned message by its id.
        encoded = [(event, event.model_dump_json().encode(), str(uuid.uuid4())) for event in events]
        # A confirming channel of its own on the same connection, opened as `Publisher.open` opens its one.
        confirming = await connection.channel(publisher_confirms=True, on_return_raises=True)
        channel = await confirming.get_underlay_channel()

        async def publish(number: int) -> None:
            await publisher.publish(events[number])

        async def publish_json(number: int) -> None:
            event, body, message_id = encoded[number]
            await publisher.publish_json(
                ROUTING_KEY,
                body,
                message_id=message_id,
                message_type=event.type,
                headers={"traceparent": TRACEPARENT},
                correlation_id=event.correlation_id,
                app_id=event.producer,
            )

        async def floor(number: int) -> None:
            event, body, message_id = encoded[number]
            properties = Basic.Properties(
                content_type="application/json",
                headers={"traceparent": TRACEPARENT},
                delivery_mode=2,
                priority=0,
                correlation_id=event.correlation_id,
                message_id=message_id,
                message_type=event.type,
                app_id=event.producer,
            )
            result = await channel.basic_publish(
                body, exchange=topology.events, routing_key=ROUTING_KEY, properties=properties, mandatory=True
            )
            assert isinstance(result, aiormq.spec.Basic.Ack)

        async def publish_all(number: int) -> None:
            await publisher.publish_all([events[number]])

        paths: list[tuple[str, int, Callable[[int], Awaitable[None]]]] = [
            ("all_serial", 1, publish_all),
            ("publish_serial", 1, publish),
            ("json_serial", 1, publish_json),
            ("floor_serial", 1, floor),
            ("publish_16", 16, publish),
            ("json_16", 16, publish_json),
            ("floor_16", 16, floor),
        ]
        # Unrecorded: the first publishes of a process pay for imports and caches the services paid at startup.
        await timed(min(count, 300), 16, floor)
        await timed(min(count, 300), 16, publish_json)
        await queue.purge()
        for name, in_flight, publish_one in paths:
            cpu_ms, wall_ms = await timed(count, in_flight, publish_one)
            figures[f"{name}_cpu_ms"] = cpu_ms
            figures[f"{name}_wall_ms"] = wall_ms
            await queue.purge()
        await queue.delete(if_unused=False, if_empty=False)
        for declared in (topology.journal, topology.cancellations):
            await admin.queue_delete(declared)
        for exchange in (topology.events, topology.dead_letters, topology.redeliver):
            await admin.exchange_delete(exchange)
        await publisher.close()
    finally:
        await connection.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="publishes per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    args = parser.parse_args()
    for number in range(1, args.rounds + 1):
        figures = uvloop.run(one_round(args.amqp_url, args.count))
        print(json.dumps({"round": number, **{key: round(value, 4) for key, value in figures.items()}}))


if __name__ == "__main__":
    main()
