"""Where the pipeline's CPU goes: CPU milliseconds per job for each process during the throughput phase.

    .venv/bin/python bench/pipeline/cpu_per_job.py [--jobs 300]

Reads user+system time of every gateway, ingest, aggregator, Postgres and RabbitMQ process (and this client)
from /proc before and after N one-step convert(webp) jobs, and divides by N. Linux only.
"""

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pipeline as pipeline

PROCESSES = ("pixtools-gateway", "pixtools-ingest", "pixtools-aggregator", "postgres", "beam.smp", "cpu_per_job")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of the processes of interest, summed by name."""
    totals: dict[str, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        for name in PROCESSES:
            if name in command:
                totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return totals


async def measure(gateway_url: str, jobs: int, amqp_url: str) -> None:
    jpeg = pipeline.sample_jpeg()
    completions = pipeline.Completions()
    connection = await completions.listen(amqp_url)
    async with aiohttp.ClientSession(
        base_url=gateway_url, headers=pipeline.HEADERS, connector=aiohttp.TCPConnector(limit=64)
    ) as client:
        await pipeline.unloaded_latency(client, completions, jpeg, 5)
        before = cpu_seconds()
        rate, _, _ = await pipeline.throughput(client, completions, jpeg, jobs, 16)
        after = cpu_seconds()
    await connection.close()
    print(f"{rate:.1f} jobs/s")
    for name in PROCESSES:
        print(f"{name:>20}: {(after.get(name, 0) - before.get(name, 0)) / jobs * 1000:5.1f} ms CPU per job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    args = parser.parse_args()
    env = {
        "PIXTOOLS_NAMESPACE": pipeline.NAMESPACE,
        "PIXTOOLS_DATABASE_URL": "postgresql+asyncpg://postgres@localhost:5432/pixtools_bench",
        "PIXTOOLS_BLOB_DIR": str(pipeline.ROOT / "var" / "bench-blobs"),
        "PIXTOOLS_LOG_LEVEL": "WARNING",
    }
    with pipeline.running_stack(pipeline.ROOT, env=env, ports=pipeline.PORTS, gpu_stages=False) as stack:
        asyncio.run(measure(stack.gateway_url, args.jobs, args.amqp_url))


if __name__ == "__main__":
    main()
