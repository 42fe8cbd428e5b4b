"""The broker's CPU for one journal copy: confirmed persistent publishes into queues of several shapes.

Each round publishes `--messages` persistent, mandatory, confirmed messages (a job event's size) to a private topic
exchange bound to one fresh queue of each shape in turn, and reads RabbitMQ's CPU (every beam.smp process, counted
whole, from /proc) before and after. Rounds alternate the shapes, rotating their order; the `none` shape publishes
the same messages unmandatory to an exchange with no queue, so the difference to it is the copy's own cost.

    flock /tmp/bench.lock .venv/bin/python bench/pipeline/journal_cost.py --messages 2000 --rounds 4

`--rate 80` spreads the publishes as the pipeline's journal copies arrive (two per job at 40 jobs/s), so each
waits for a flush of its own. The broker's idle background (a few ms of CPU per second) counts in every shape
alike, through the elapsed time.
"""

import argparse
import asyncio
import os
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, DeliveryMode, ExchangeType

WEEK_MS = 7 * 24 * 3600 * 1000
BOUNDED = {"x-overflow": "drop-head", "x-message-ttl": WEEK_MS}
SHAPES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "durable-100k": {"durable": True, "arguments": {**BOUNDED, "x-max-length": 100_000}},
    "durable-100k-v2": {"durable": True, "arguments": {**BOUNDED, "x-max-length": 100_000, "x-queue-version": 2}},
    "durable-1k": {"durable": True, "arguments": {**BOUNDED, "x-max-length": 1000}},
    "durable-1k-v2": {"durable": True, "arguments": {**BOUNDED, "x-max-length": 1000, "x-queue-version": 2}},
    "durable-0-v2": {"durable": True, "arguments": {**BOUNDED, "x-max-length": 0, "x-queue-version": 2}},
    "transient-1k": {"durable": False, "arguments": {**BOUNDED, "x-max-length": 1000}},
    "stream-10mb": {
        "durable": True,
        "arguments": {
            "x-queue-type": "stream",
            "x-max-length-bytes": 10_000_000,
            "x-stream-max-segment-size-bytes": 1_000_000,
        },
    },
}
PREFILL_UP_TO = 10_000
"""A bound this small is filled before measuring, so the round sees the steady state: every publish drops one."""
BODY = b'{"type":"job.completed.v1","payload":"' + b"x" * 560 + b'"}'


def beam_cpu_seconds() -> float:
    """User + system CPU seconds so far of every beam.smp process (the broker), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"beam.smp" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(map(int, fields[11:15])) / ticks
    return total


async def publish_round(
    channel: AbstractChannel, shape: str, messages: int, in_flight: int, rate: float
) -> tuple[float, float]:
    """Publish to a fresh queue of the shape; return (beam.smp ms per message, confirm round trip ms)."""
    prefix = f"bench-journal-{secrets.token_hex(3)}"
    exchange = await channel.declare_exchange(f"{prefix}.events", ExchangeType.TOPIC, durable=True)
    spec = SHAPES[shape]
    queue = None
    if spec is not None:
        queue = await channel.declare_queue(f"{prefix}.journal", **spec)
        await queue.bind(exchange, routing_key="job.#")
        bound = spec["arguments"].get("x-max-length", PREFILL_UP_TO + 1)
        if bound <= PREFILL_UP_TO:
            filler = aio_pika.Message(BODY, delivery_mode=DeliveryMode.PERSISTENT)
            await asyncio.gather(*(exchange.publish(filler, routing_key="job.completed.v1") for _ in range(bound)))
    slots = asyncio.Semaphore(in_flight)

    async def publish_one(number: int) -> None:
        if rate:
            await asyncio.sleep(number / rate)
        async with slots:
            message = aio_pika.Message(BODY, delivery_mode=DeliveryMode.PERSISTENT, message_id=str(number))
            await exchange.publish(message, routing_key="job.completed.v1", mandatory=spec is not None)

    await asyncio.sleep(0.5)
    cpu_before, started = beam_cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(publish_one(number) for number in range(messages)))
    elapsed = time.perf_counter() - started
    cpu = beam_cpu_seconds() - cpu_before
    if queue is not None:
        await queue.delete(if_unused=False, if_empty=False)
    await exchange.delete()
    confirm_ms = elapsed * 1000 * in_flight / messages if not rate else float("nan")
    return cpu * 1000 / messages, confirm_ms


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="amqp://guest:guest@localhost:5672/")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=1, help="confirms awaited at once (1: one at a time)")
    parser.add_argument("--rate", type=float, default=0, help="messages per second, spread evenly (0: at once)")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    connection = await aio_pika.connect(args.url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    results: dict[str, list[tuple[float, float]]] = {shape: [] for shape in shapes}
    for round_number in range(args.rounds):
        order = shapes[round_number % len(shapes) :] + shapes[: round_number % len(shapes)]
        for shape in order:
            results[shape].append(await publish_round(channel, shape, args.messages, args.in_flight, args.rate))
        print(f"round {round_number + 1} done, load {os.getloadavg()[0]:.2f}", flush=True)
    await connection.close()
    print(f"{'shape':18s} beam.smp ms/message per round (median)            confirm ms (median)")
    for shape in shapes:
        cpu = [round(figure[0], 3) for figure in results[shape]]
        confirm = [round(figure[1], 2) for figure in results[shape]]
        print(f"{shape:18s} {cpu} ({statistics.median(cpu):.3f})   {confirm} ({statistics.median(confirm):.2f})")


if __name__ == "__main__":
    asyncio.run(main())
