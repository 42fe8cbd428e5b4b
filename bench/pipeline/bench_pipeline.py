"""Pipeline benchmark: throughput, CPU per job, latency and reads through the running stack, against a bare loop.

Runs, in one go on the same cores (each of `--runs` repeats steps 2-5 on the same stack):
  1. the bare loop: decode a 640x480 JPEG and encode WebP q80, in one process (one thread, then one
     thread per core), with its CPU time per image;
  2. unloaded latency: one-step convert(webp) jobs submitted one at a time;
  3. throughput: N such jobs submitted with bounded concurrency, with the CPU time every stack process
     (gateway, ingest, aggregator, Postgres, RabbitMQ) spent on them, read from /proc before and after;
  4. read latency: GET /v1/jobs/{id} at a fixed 200 requests/s (open loop), straight after the write burst
     (no settle pause unless --settle-seconds is given): users read while they write.
Completion times come from job.completed.v1 events on a queue of the benchmark's own, so measuring
adds no polling load.

The service overhead is the stack's CPU per job minus the bare loop's CPU per image: what the service spends
around the image work. The services are counted by process tree, only this stack's; Postgres and RabbitMQ are
counted whole (they serve everything on the machine), so their figures need an otherwise idle machine.
The bare loop runs alone, before the burst; in the burst the same image work shares the cores with every other
process and costs more CPU per image. So each run also reads ingest's `pixtools_cpu_pool_seconds_total` (the CPU
its pool threads spent on the images, in the burst) and reports the stack's CPU per job minus that as
`overhead_vs_pool_cpu_ms_per_job`: what the service spends around the image work as it ran, and that divided by the
pool's CPU per job (`overhead_per_pool_cpu`). That quotient moves least from run to run on one machine, but not
between machines: the image codecs and the services' own code do not speed up alike from one machine to another
(docs/benchmarks.md, "Issue 12 on 2026-12-06, 05:08–05:37 UTC"). `system_cpu_ms_per_job_<process>` is the
kernel's part of each process's CPU.

    .venv/bin/python bench/pipeline/bench_pipeline.py [--jobs 300] [--concurrency 16] [--runs 3]
"""

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiohttp
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "imaging"))

from bare_loop import bare_convert_loop  # noqa: E402

from pixtools_devstack.stack import running_stack  # noqa: E402

NAMESPACE = "bench"
PORTS = {"gateway": 8100, "ingest": 9201, "aggregator": 9202, "denoise": 9203, "detect": 9204}
PIPELINE = json.dumps([{"op": "convert", "params": {"format": "webp", "quality": 80}}])
HEADERS = {"X-API-Key": "pixtools-dev-key"}


def sample_jpeg() -> bytes:
    """A 640x480 photograph-like JPEG: the shared COCO sample when present, else generated."""
    shared = sorted((ROOT.parent / "shared" / "data" / "coco-sample").glob("*.jpg"))
    if shared:
        image = Image.open(shared[0]).convert("RGB").resize((640, 480))
    else:
        image = Image.effect_noise((640, 480), 50).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# The stack's processes. The services are counted by process tree (this benchmark's own, not other stacks running on
# the machine); Postgres and RabbitMQ, shared by everything on it, are counted whole, by a part of their command line.
STACK_PROCESSES = {
    "gateway": "pixtools-gateway",
    "ingest": "pixtools-ingest",
    "aggregator": "pixtools-aggregator",
    "postgres": "postgres",
    "rabbitmq": "beam.smp",
}
SHARED_SERVERS = ("postgres", "rabbitmq")


@dataclass(frozen=True)
class BareLoop:
    """The bare decode+encode loop: images/s on one thread and on every core, and CPU seconds per image."""

    single_per_s: float
    all_cores_per_s: float
    cpu_per_image_s: float


def bare_loop(jpeg: bytes, count: int) -> BareLoop:
    """Images/s of the bare loop on one thread and on one thread per core (Pillow releases the GIL)."""
    cpu_before = time.process_time()
    single = count / bare_convert_loop(jpeg, count)
    cpu_per_image = (time.process_time() - cpu_before) / count
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(lambda _: bare_convert_loop(jpeg, count // cores), range(cores)))
    parallel = (count // cores) * cores / (time.perf_counter() - started)
    return BareLoop(single, parallel, cpu_per_image)


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds so far of the stack's processes, summed by part: all of it, and the kernel's part of it."""

    total: dict[str, float]
    system: dict[str, float]


def stack_cpu_seconds(services: dict[str, int]) -> CpuReading:
    """CPU seconds (user + system, and system alone) so far of the stack's processes, by part, from /proc (Linux only).

    `services` maps each service to its process id: that process and its descendants count, and only they.
    Each process counts its own time and its reaped children's (utime, stime, cutime, cstime): a Postgres backend
    that exits between two readings would otherwise take its time with it and make the difference negative.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    seconds: dict[int, tuple[float, float]] = {}
    commands: dict[int, str] = {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = map(int, fields[11:15])
        parents[pid], commands[pid] = int(fields[1]), command
        seconds[pid] = ((utime + stime + cutime + cstime) / ticks, (stime + cstime) / ticks)
    owners = {pid: part for part, pid in services.items()}
    reading = CpuReading(dict.fromkeys(STACK_PROCESSES, 0.0), dict.fromkeys(STACK_PROCESSES, 0.0))
    for pid, (spent, in_kernel) in seconds.items():
        ancestor = pid
        while ancestor > 1 and ancestor not in owners:
            ancestor = parents.get(ancestor, 0)
        part = owners.get(ancestor)
        if part is None:
            part = next((shared for shared in SHARED_SERVERS if STACK_PROCESSES[shared] in commands[pid]), None)
        if part is not None:
            reading.total[part] += spent
            reading.system[part] += in_kernel
    return reading


class Completions:
    """Completion times of jobs, from job.completed.v1 on the benchmark's own queue."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}

    async def listen(self, amqp_url: str) -> aio_pika.abc.AbstractConnection:
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(f"{NAMESPACE}.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="job.completed.v1")
        await queue.bind(exchange, routing_key="job.failed.v1")
        await queue.consume(self._on_message, no_ack=True)
        return connection

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        job_id = json.loads(message.body)["job_id"]
        self.done[job_id] = now
        if (waiter := self.waiters.pop(job_id, None)) is not None and not waiter.done():
            waiter.set_result(now)

    def wait(self, job_id: str) -> "asyncio.Future[float]":
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if job_id in self.done:
            future.set_result(self.done[job_id])
        else:
            self.waiters[job_id] = future
        return future


async def submit(client: aiohttp.ClientSession, jpeg: bytes) -> tuple[str, float]:
    form = aiohttp.FormData()
    form.add_field("file", jpeg, filename="p.jpg", content_type="image/jpeg")
    form.add_field("pipeline", PIPELINE)
    started = time.perf_counter()
    async with client.post("/v1/jobs", data=form) as response:
        response.raise_for_status()
        job_id: str = (await response.json())["job_id"]
    return job_id, started


async def unloaded_latency(
    client: aiohttp.ClientSession, completions: Completions, jpeg: bytes, count: int
) -> list[float]:
    latencies = []
    for _ in range(count):
        job_id, started = await submit(client, jpeg)
        latencies.append(await asyncio.wait_for(completions.wait(job_id), 30) - started)
    return latencies


async def throughput(
    client: aiohttp.ClientSession, completions: Completions, jpeg: bytes, count: int, concurrency: int
) -> tuple[float, list[float], list[str]]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[str, float, float]:
        async with gate:
            job_id, started = await submit(client, jpeg)
        finished = await asyncio.wait_for(completions.wait(job_id), 300)
        return job_id, started, finished

    began = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(count)))
    elapsed = max(finished for _, _, finished in results) - began
    return count / elapsed, [finished - started for _, started, finished in results], [job for job, _, _ in results]


async def read_latency(client: aiohttp.ClientSession, job_ids: list[str], rate: float, seconds: float) -> list[float]:
    """Open-loop GETs at a fixed rate, whatever the answers' latency."""
    latencies: list[float] = []

    async def read(job_id: str) -> None:
        started = time.perf_counter()
        async with client.get(f"/v1/jobs/{job_id}") as response:
            response.raise_for_status()
            await response.read()
        latencies.append(time.perf_counter() - started)

    await open_loop(rate, seconds, job_ids, read)
    return latencies


async def open_loop(rate: float, seconds: float, job_ids: list[str], call: Callable[[str], Awaitable[None]]) -> None:
    """Start `call` at a fixed `rate` for `seconds`, cycling through the jobs, whatever the earlier calls take."""
    tasks = []
    began = time.perf_counter()
    for index in range(int(rate * seconds)):
        delay = began + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(call(job_ids[index % len(job_ids)])))
    await asyncio.gather(*tasks)


async def run_once(
    args: argparse.Namespace,
    client: aiohttp.ClientSession,
    completions: Completions,
    jpeg: bytes,
    services: dict[str, int],
) -> dict[str, float]:
    """Unloaded latency, then the write burst with the stack's CPU per job, then reads straight after it."""
    await unloaded_latency(client, completions, jpeg, 5)  # warm up connections and caches
    unloaded = await unloaded_latency(client, completions, jpeg, args.unloaded)
    pool_before = await pool_cpu_seconds(client)
    cpu_before, client_before = stack_cpu_seconds(services), time.process_time()
    rate, loaded, job_ids = await throughput(client, completions, jpeg, args.jobs, args.concurrency)
    cpu_after, client_after = stack_cpu_seconds(services), time.process_time()
    pool_after = await pool_cpu_seconds(client)
    if args.settle_seconds:
        await asyncio.sleep(args.settle_seconds)
    reads = await read_latency(client, job_ids, args.read_rate, args.read_seconds)
    figures = {
        "pipeline_jobs_per_s": rate,
        "unloaded_p50_ms": statistics.median(unloaded) * 1000,
        "unloaded_p95_ms": percentile(unloaded, 0.95) * 1000,
        "loaded_p50_ms": statistics.median(loaded) * 1000,
        "loaded_p99_ms": percentile(loaded, 0.99) * 1000,
        "get_p50_ms": statistics.median(reads) * 1000,
        "get_p99_ms": percentile(reads, 0.99) * 1000,
        "get_requests": len(reads),
        "client_cpu_ms_per_job": (client_after - client_before) / args.jobs * 1000,
    }
    for part in STACK_PROCESSES:
        figures[f"cpu_ms_per_job_{part}"] = (cpu_after.total[part] - cpu_before.total[part]) / args.jobs * 1000
        # The kernel's part: socket and file system calls, wake-ups and disk syncs, rather than the process's own code.
        figures[f"system_cpu_ms_per_job_{part}"] = (cpu_after.system[part] - cpu_before.system[part]) / args.jobs * 1000
    figures["cpu_ms_per_job_stack"] = sum(figures[f"cpu_ms_per_job_{part}"] for part in STACK_PROCESSES)
    if pool_before is not None and pool_after is not None:
        # The image work as ingest ran it in the burst, beside everything else on the same cores.
        figures["ingest_pool_cpu_ms_per_job"] = (pool_after - pool_before) / args.jobs * 1000
        figures["overhead_vs_pool_cpu_ms_per_job"] = (
            figures["cpu_ms_per_job_stack"] - figures["ingest_pool_cpu_ms_per_job"]
        )
        # Their quotient moves least from run to run on one machine (not between machines: see the docstring).
        figures["overhead_per_pool_cpu"] = (
            figures["overhead_vs_pool_cpu_ms_per_job"] / figures["ingest_pool_cpu_ms_per_job"]
        )
    return figures


async def pool_cpu_seconds(client: aiohttp.ClientSession) -> float | None:
    """CPU seconds ingest's pool threads have spent on image work so far (its /metrics); None where not exported."""
    async with client.get(f"http://127.0.0.1:{PORTS['ingest']}/metrics") as answer:
        text = await answer.text()
    for line in text.splitlines():
        if line.startswith('pixtools_cpu_pool_seconds_total{pool="ingest-cpu"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


async def run(args: argparse.Namespace, gateway_url: str, services: dict[str, int]) -> list[dict[str, float]]:
    """`--runs` measurements on one stack, then the bare loop, which every run is divided by."""
    jpeg = sample_jpeg()
    completions = Completions()
    connection = await completions.listen(args.amqp_url)
    # aiohttp rather than httpx: httpx's pool degrades with many queued requests and would measure the client.
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(base_url=gateway_url, headers=HEADERS, connector=connector) as client:
        runs = [await run_once(args, client, completions, jpeg, services) for _ in range(args.runs)]
    await connection.close()
    bare = bare_loop(jpeg, args.bare)
    for figures in runs:
        figures.update(
            bare_single_per_s=bare.single_per_s,
            bare_all_cores_per_s=bare.all_cores_per_s,
            bare_cpu_ms_per_image=bare.cpu_per_image_s * 1000,
            ratio_vs_bare_single=figures["pipeline_jobs_per_s"] / bare.single_per_s,
            ratio_vs_bare_all_cores=figures["pipeline_jobs_per_s"] / bare.all_cores_per_s,
            overhead_cpu_ms_per_job=figures["cpu_ms_per_job_stack"] - bare.cpu_per_image_s * 1000,
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--unloaded", type=int, default=50)
    parser.add_argument("--bare", type=int, default=300)
    parser.add_argument("--read-rate", type=float, default=200.0)
    parser.add_argument("--read-seconds", type=float, default=10.0)
    parser.add_argument("--settle-seconds", type=float, default=0.0, help="pause between the burst and the reads")
    parser.add_argument("--runs", type=int, default=1, help="measurements on the same stack, one bare loop")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    parser.add_argument(
        "--database",
        default="pixtools_bench",
        help="Postgres database of the benchmark's stack (created and migrated if missing); one per checkout "
        "when several branches are measured on one server",
    )
    args = parser.parse_args()
    with running_stack(ROOT, env=stack_env(args.database), ports=PORTS, gpu_stages=False) as stack:
        services = {service.name: service.process.pid for service in stack.services if service.process is not None}
        runs = asyncio.run(run(args, stack.gateway_url, services))
    for figures in runs:
        print(json.dumps({key: round(value, 3) for key, value in figures.items()}))
    print(summary(runs))


def stack_env(database: str) -> dict[str, str]:
    """The benchmark stack's settings: its own namespace, database and blob directory."""
    return {
        "PIXTOOLS_NAMESPACE": NAMESPACE,
        "PIXTOOLS_DATABASE_URL": f"postgresql+asyncpg://postgres@localhost:5432/{database}",
        "PIXTOOLS_BLOB_DIR": str(ROOT / "var" / "bench-blobs"),
        "PIXTOOLS_LOG_LEVEL": "WARNING",
        # The per-tenant limits stay on (their cost is measured) but out of reach: 200 reads/s and bursts of
        # submissions are what this benchmark sends, and bench/gateway measures the limits themselves.
        "PIXTOOLS_SUBMISSIONS_PER_S": "100000",
        "PIXTOOLS_READS_PER_S": "100000",
    }


def summary(runs: list[dict[str, float]]) -> str:
    """The issue's four figures per run, and the CPU per process, as a short table."""
    lines = ["run  jobs/s  vs-all-cores  overhead-ms/job  GET-p99-ms  unloaded-p50-ms   " + "  ".join(STACK_PROCESSES)]
    for number, figures in enumerate(runs, 1):
        parts = "  ".join(f"{figures[f'cpu_ms_per_job_{part}']:{len(part)}.1f}" for part in STACK_PROCESSES)
        lines.append(
            f"{number:>3}  {figures['pipeline_jobs_per_s']:6.1f}  {figures['ratio_vs_bare_all_cores']:12.2f}"
            f"  {figures['overhead_cpu_ms_per_job']:15.1f}  {figures['get_p99_ms']:10.1f}"
            f"  {figures['unloaded_p50_ms']:15.1f}   {parts}"
        )
    if all("overhead_vs_pool_cpu_ms_per_job" in figures for figures in runs):
        lines.append("run  bare-cpu-ms/image  ingest-pool-cpu-ms/job  overhead-vs-pool-ms/job  overhead/pool")
        for number, figures in enumerate(runs, 1):
            lines.append(
                f"{number:>3}  {figures['bare_cpu_ms_per_image']:17.1f}  {figures['ingest_pool_cpu_ms_per_job']:22.1f}"
                f"  {figures['overhead_vs_pool_cpu_ms_per_job']:23.1f}  {figures['overhead_per_pool_cpu']:13.2f}"
            )
    lines.append("run  kernel part, ms/job   " + "  ".join(STACK_PROCESSES))
    for number, figures in enumerate(runs, 1):
        parts = "  ".join(f"{figures[f'system_cpu_ms_per_job_{part}']:{len(part)}.1f}" for part in STACK_PROCESSES)
        lines.append(f"{number:>3}  {'':20}   {parts}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
