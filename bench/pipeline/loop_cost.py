"""CPU per broker message and per database round trip on asyncio's loop and on uvloop, in one process.

What the workers do around every message, without the image work whose spread would hide it: publish with
a confirm (mandatory, persistent) to a quorum queue of a fresh namespace, consume and ack it, and one asyncpg
round trip. Rounds alternate the loops (asyncio, uvloop, asyncio, ...) so both see the same minutes:

    .venv/bin/python bench/pipeline/loop_cost.py [--messages 2000] [--queries 2000] [--rounds 3]
"""

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import aio_pika
import asyncpg
import uvloop

LOOPS: dict[str, Callable[[Coroutine[Any, Any, dict[str, float]]], dict[str, float]]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


async def broker_round(amqp_url: str, count: int) -> tuple[float, float]:
    """CPU ms per confirmed publish, and per consumed-and-acked message, 16 in flight as a worker's prefetch."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        name = f"loopcost.{uuid.uuid4().hex[:8]}"
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        body = json.dumps({"job_id": str(uuid.uuid4()), "pad": "x" * 600}).encode()
        gate = asyncio.Semaphore(16)

        async def publish() -> None:
            async with gate:
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=name, mandatory=True)

        started = time.process_time()
        await asyncio.gather(*(publish() for _ in range(count)))
        publish_ms = (time.process_time() - started) / count * 1000

        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=16)
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            json.loads(message.body)
            await message.ack()
            seen += 1
            if seen == count:
                done.set()

        started = time.process_time()
        ours = await consumer.get_queue(name)
        tag = await ours.consume(on_message)
        await done.wait()
        consume_ms = (time.process_time() - started) / count * 1000
        await ours.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return publish_ms, consume_ms
    finally:
        await connection.close()


async def database_round(database_url: str, count: int) -> float:
    """CPU ms per asyncpg round trip of a small prepared statement."""
    connection = await asyncpg.connect(database_url)
    try:
        statement = await connection.prepare("SELECT $1::uuid, now()")
        started = time.process_time()
        for _ in range(count):
            await statement.fetchrow(uuid.uuid4())
        return (time.process_time() - started) / count * 1000
    finally:
        await connection.close()


async def one_round(args: argparse.Namespace) -> dict[str, float]:
    publish_ms, consume_ms = await broker_round(args.amqp_url, args.messages)
    query_ms = await database_round(args.database_url, args.queries)
    return {"publish_confirm_ms": publish_ms, "consume_ack_ms": consume_ms, "asyncpg_round_trip_ms": query_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    parser.add_argument("--database-url", default="postgresql://postgres@localhost:5432/postgres")
    args = parser.parse_args()
    for number in range(1, args.rounds + 1):
        for name, run in LOOPS.items():
            figures = {key: round(value, 4) for key, value in run(one_round(args)).items()}
            print(json.dumps({"round": number, "loop": name, **figures}))


if __name__ == "__main__":
    main()
