"""The aggregator's own cost per one-step job: its CPU, and its database round trips by statement.

Runs the real aggregator (`pixtools_aggregator.app.main`) as a child process against its own database and
namespace, with every asyncpg round trip it makes counted by statement. The driver seeds one-step jobs as the
gateway writes them, then publishes one `step.completed` per job, `--concurrency` at a time, each waiting for the
job's `job.completed` before the next, as `bench/pipeline` does; it reads the child's CPU from /proc and the counts
from the child before and after. The child's background loops (outbox sweep, webhook poll, backlog sampler) also
count; an idle window of the same length is measured first and shown apart.

    .venv/bin/python bench/pipeline/aggregator_cost.py --jobs 300 --concurrency 1 --database pixtools_bench_agg_cost

With `--rate N` the driver instead publishes N events per second on average, open loop, with exponential gaps from
a fixed seed (as a stage's independent workers would send them), which is how the pipeline feeds the aggregator;
`events_per_group` (from the child's `pixtools_group_size` histogram) shows how many events its groups then held.

Copy it into another checkout to compare versions: it only uses the aggregator's console entry and contracts.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NAMESPACE = "aggcost"
"""The default namespace of the child's queues; `--namespace` gives each engineer's runs their own."""


def serve(count_file: str) -> None:
    """The child: the aggregator, with each asyncpg round trip counted by its statement's first words."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts: collections.Counter[str] = collections.Counter()

    class Counting:
        """Stands in for an asyncpg connection's protocol and counts the calls that wait for the server."""

        def __init__(self, protocol: Any) -> None:
            self._protocol = protocol

        def __getattr__(self, name: str) -> Any:
            attribute = getattr(self._protocol, name)
            if name not in ("prepare", "bind_execute", "bind_execute_many", "query", "bind", "execute"):
                return attribute

            def counted(*args: Any, **kwargs: Any) -> Any:
                first = args[0] if args else None
                sql = first if isinstance(first, str) else getattr(first, "query", "") if name != "prepare" else ""
                if name == "prepare":
                    sql = args[1] if len(args) > 1 and isinstance(args[1], str) else "?"
                    counts["prepare " + " ".join(sql.split()[:3])] += 1
                else:
                    # asyncpg's own prepared statements (the aggregator's driver-level ones) show no text here.
                    counts[" ".join(str(sql).split()[:4])[:60] or "(statement prepared by asyncpg itself)"] += 1
                return attribute(*args, **kwargs)

            return counted

    if os.environ.get("AGGREGATOR_COST_COUNT") == "0":
        # CPU alone: the counting proxy costs some CPU on every call it sees.
        from pixtools_aggregator.app import main as serve_uncounted

        Path(count_file).write_text("{}")
        serve_uncounted()
        return

    @event.listens_for(Engine, "connect")
    def _count(dbapi_connection: Any, _record: Any) -> None:
        connection = dbapi_connection._connection
        connection._protocol = Counting(connection._protocol)

    def dump() -> None:
        while True:
            time.sleep(0.1)
            Path(count_file + ".tmp").write_text(json.dumps(dict(counts)))
            os.replace(count_file + ".tmp", count_file)

    threading.Thread(target=dump, daemon=True).start()
    from pixtools_aggregator.app import main

    main()


def wait_ready(child: subprocess.Popen[bytes], port: int, seconds: float = 60.0) -> None:
    """Until the child's /readyz answers 200 (its consumer has started)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit("the aggregator exited at start")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise SystemExit("the aggregator did not become ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(map(int, fields[11:15])) / os.sysconf("SC_CLK_TCK")


def groups_acked(port: int) -> tuple[float, float]:
    """The groups the child has acked, and the events in them, from its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    figures = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        for kind in figures:
            if line.startswith(f"pixtools_group_size_{kind}{{") and 'outcome="acked"' in line:
                figures[kind] += float(line.rsplit(" ", 1)[1])
    return figures["count"], figures["sum"]


def read_counts(path: Path) -> collections.Counter[str]:
    for _ in range(50):
        try:
            return collections.Counter(json.loads(path.read_text()))
        except (OSError, ValueError):
            time.sleep(0.05)
    raise RuntimeError("the aggregator wrote no counts")


async def seed(database_url: str, count: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """`count` one-step convert jobs of one tenant (no webhook), as the gateway writes them; (job, tenant) ids."""
    import asyncpg

    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    tenant_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO tenants (id, name, webhook_secret) VALUES ($1, $2, $3)",
        tenant_id,
        f"aggcost-{tenant_id.hex[:8]}",
        "whsec_" + "A" * 32,
    )
    jobs = [(uuid.uuid4(), tenant_id) for _ in range(count)]
    pipeline = json.dumps([{"op": "convert", "params": {"format": "webp", "quality": 80}}])
    await connection.executemany(
        "INSERT INTO jobs (id, tenant_id, state, pipeline, step_count, leaf_count, correlation_id, input_key,"
        " input_content_type, input_bytes, input_sha256) VALUES ($1, $2, 'accepted', $3::jsonb, 1, 1, $4,"
        " 'originals/x.jpg', 'image/jpeg', 1000, $5)",
        [(job_id, tenant, pipeline, f"corr-{job_id}", "c" * 64) for job_id, tenant in jobs],
    )
    await connection.executemany(
        "INSERT INTO steps (job_id, step_id, position, parent_id, op, params, is_leaf, state)"
        " VALUES ($1, '0', 0, NULL, 'convert', $2::jsonb, true, 'pending')",
        [(job_id, json.dumps({"format": "webp", "quality": 80})) for job_id, _ in jobs],
    )
    await connection.close()
    return jobs


def completed(job_id: uuid.UUID, tenant_id: uuid.UUID) -> Any:
    from pixtools_contracts import ObjectRef, StepCompleted, StepOutput

    key = f"jobs/{job_id}/0/image.webp"
    image = ObjectRef(key=key, content_type="image/webp", bytes=20000, sha256="a" * 64, width=640, height=480)
    now = datetime.now(UTC)
    return StepCompleted(
        job_id=job_id, tenant_id=tenant_id, correlation_id=f"corr-{job_id}", producer="ingest", step_id="0",
        op="convert", started_at=now, finished_at=now, image=image,
        outputs=[StepOutput(name="image", role="image", **image.model_dump())],
    )  # fmt: skip


async def drive(args: argparse.Namespace, pid: int, port: int, count_file: Path) -> dict[str, Any]:
    import aio_pika

    from pixtools_contracts import parse_event
    from pixtools_platform.broker import Publisher, Topology

    jobs = await seed(args.database_url, args.jobs + args.warmup)
    connection = await aio_pika.connect_robust(args.amqp_url)
    publisher = await Publisher.open(connection, Topology(args.namespace))
    channel = await connection.channel()
    exchange = await Topology(args.namespace).declare_exchanges(channel)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="job.completed.v1")
    waiting: dict[uuid.UUID, asyncio.Future[None]] = {}

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            future = waiting.get(parse_event(message.body).job_id)
            if future is not None and not future.done():
                future.set_result(None)

    await queue.consume(on_message)

    async def run_jobs(batch: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
        if args.rate:
            await run_at_rate(batch)
            return
        pending = collections.deque(batch)

        async def worker() -> None:
            while pending:
                job_id, tenant_id = pending.popleft()
                waiting[job_id] = asyncio.get_running_loop().create_future()
                await publisher.publish(completed(job_id, tenant_id))
                await asyncio.wait_for(waiting[job_id], 30)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))

    async def run_at_rate(batch: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
        # Open loop: step.completed events at `rate` per second on average, whatever the aggregator is doing, with
        # exponential gaps (a stage's many workers finish independently), then wait for every job's job.completed.
        # The gaps are drawn from a fixed seed, so every run sends the same sequence.
        loop = asyncio.get_running_loop()
        gaps = random.Random(len(batch))
        due = loop.time()
        publishes = []
        for job_id, tenant_id in batch:
            waiting[job_id] = loop.create_future()
            due += gaps.expovariate(args.rate)
            await asyncio.sleep(max(0.0, due - loop.time()))
            # Not awaited here: a confirm's wait would delay the next event.
            publishes.append(asyncio.ensure_future(publisher.publish(completed(job_id, tenant_id))))
        await asyncio.gather(*publishes)
        await asyncio.wait_for(asyncio.gather(*(waiting[job_id] for job_id, _ in batch)), 60)

    await run_jobs(jobs[: args.warmup])
    await asyncio.sleep(1.0)
    # Idle window first, for the background loops' share.
    idle_cpu, idle_counts, idle_started = cpu_seconds(pid), read_counts(count_file), time.monotonic()
    await asyncio.sleep(args.idle_seconds)
    idle_cpu = cpu_seconds(pid) - idle_cpu
    idle_counts = read_counts(count_file) - idle_counts
    idle_span = time.monotonic() - idle_started

    groups_before = groups_acked(port)
    cpu_before, counts_before, started = cpu_seconds(pid), read_counts(count_file), time.monotonic()
    await run_jobs(jobs[args.warmup :])
    await asyncio.sleep(1.0)  # the outbox marks and the counts file catch up
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    counts = read_counts(count_file) - counts_before
    groups_after = groups_acked(port)
    groups, grouped_events = (after - before for after, before in zip(groups_after, groups_before, strict=True))
    await connection.close()
    idle_share = elapsed / idle_span
    round_trips = sum(counts.values())
    idle_round_trips = sum(idle_counts.values()) * idle_share
    return {
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "jobs_per_s": round(args.jobs / (elapsed - 1.0), 1),
        "aggregator_cpu_ms_per_job": round(cpu / args.jobs * 1000, 3),
        "events_per_group": round(grouped_events / groups, 2) if groups else None,
        "idle_cpu_ms_per_job": round(idle_cpu * idle_share / args.jobs * 1000, 3),
        "round_trips_per_job": round(round_trips / args.jobs, 2),
        "idle_round_trips_per_job": round(idle_round_trips / args.jobs, 2),
        "statements_per_job": {key: round(value / args.jobs, 2) for key, value in counts.most_common()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="publish this many events per second, open loop (not --concurrency)"
    )
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    parser.add_argument("--database", default="pixtools_bench_agg_cost")
    parser.add_argument("--namespace", default=NAMESPACE, help="the exchanges' and queues' prefix")
    parser.add_argument("--no-count", action="store_true", help="measure CPU without counting the round trips")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    from pixtools_db.migrate import upgrade

    args.database_url = f"postgresql+asyncpg://postgres@localhost:5432/{args.database}"
    upgrade(args.database_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    count_file = Path(f"/tmp/aggregator-cost-{os.getpid()}.json")
    env = os.environ | {
        "PIXTOOLS_NAMESPACE": args.namespace,
        "PIXTOOLS_DATABASE_URL": args.database_url,
        "PIXTOOLS_AMQP_URL": args.amqp_url,
        "PIXTOOLS_LOG_LEVEL": "WARNING",
        "PIXTOOLS_OPS_PORT": str(port),
        "PIXTOOLS_BLOB_DIR": f"/tmp/aggregator-cost-blobs-{os.getpid()}",
        "AGGREGATOR_COST_COUNT": "0" if args.no_count else "1",
    }
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(count_file)], env=env)
    try:
        wait_ready(child, port)
        print(json.dumps(asyncio.run(drive(args, child.pid, port, count_file))))
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)
        count_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
