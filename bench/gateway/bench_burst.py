"""Burst isolation: does one tenant's burst slow another tenant's reads?

Runs, against a real local stack (gateway, ingest, aggregator; the relay off, so submitted jobs stay accepted
and the workers add no load):
  1. tenant B reads `GET /v1/jobs/{id}` at a fixed rate (open loop) while nothing else runs: B's idle p50/p99;
  2. tenant A sends a burst of submissions (`POST /v1/jobs`, a URL job) all at once with bounded concurrency,
     from a separate process so that generating the burst does not share an event loop with B's timing,
     while B keeps reading at the same rate: B's p50/p99 during the burst, and A's share of 429 answers.

The ratio of B's burst p99 to its idle p99, from the same run, is the figure to watch (target: within 2x).
Beside it, a figure the machine's load moves less: the most of A's 202 answers that came in any 100 ms slice,
over the whole burst and after its first `window_s` (once the burst allowance is spent), which shows whether A is
admitted evenly or in clumps.
`--limits off` puts the limits out of reach, to compare against the same burst unlimited; `--hold-s 0` answers
repeated refusals at once (no tarpit), to compare against the gateway's default hold. The last line printed is
the ratio and the load average, for comparing runs on a loaded machine.

The defaults (B reading 60/s for 35 s idle, then through A's 5000-request burst, about 25 s on a quiet machine)
put each phase's p99 on 15-20 or more of B's reads, in a run of about 80 s; `--idle-seconds 8 --read-rate 50
--burst 2000` are the shorter phases of the earlier measurements, whose p99 rested on 4-5 reads. B's rate stays
well under its limit (100/s) and under what a loaded gateway serves: at 80/s a gateway slowed by other work on the
machine fell behind B alone, and B's queued reads then came in clumps over its limit.
`--namespace` keeps the run's queues apart from other stacks' (a durable queue left with messages by another run
in the same namespace is otherwise consumed by this run's workers, which then add load).

    flock /tmp/bench.lock .venv/bin/python bench/gateway/bench_burst.py [--burst 5000] [--limits on|off]
        [--read-rate 60] [--idle-seconds 35] [--namespace bench-burst] [--no-redis] [--hold-s SECONDS]
        [--database pixtools_bench_NAME] [--burst-nice 10]
"""

import argparse
import asyncio
import bisect
import functools
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

from pixtools_devstack.stack import BIN, running_stack

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench-burst"
PORTS = {"gateway": 8110, "ingest": 9211, "aggregator": 9212, "denoise": 9213, "detect": 9214}
DATABASE_URL = "postgresql+asyncpg://postgres@localhost:5432/{database}"
SLICE_S = 0.1
URL_JOB = {"source_url": "https://burst.example/cat.jpg", "pipeline": [{"op": "metadata"}]}


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def reads_at_or_over_p99(values: list[float]) -> int:
    """How many of the values the p99 rests on: those at or above its rank."""
    return len(values) - min(len(values) - 1, max(0, round(0.99 * len(values)) - 1))


def new_tenant_key(env: dict[str, str]) -> str:
    """A new tenant's API key, made with pixtools-admin."""
    name = f"burst-{os.urandom(4).hex()}"
    created = subprocess.run(
        [str(BIN / "pixtools-admin"), "create-tenant", name], env=env, capture_output=True, text=True, check=True
    )
    return created.stdout.splitlines()[-1]


GATEWAY_SERIES = {
    "gateway_cpu_s": "process_cpu_seconds_total",
    "refused_in_full": 'pixtools_http_request_seconds_count{method="POST",route="/v1/jobs",status="429"}',
    "refused_in_all": 'pixtools_http_limited_total{route_class="submissions"}',
    # B's reads as the gateway itself timed them (only B reads a job during the run): inside the app, after the
    # event loop got to them, against the client's view, which adds the loop's queue and the wire.
    **{
        f"reads_within_{bound}": f'pixtools_http_request_seconds_bucket{{le="{bound}",method="GET",'
        f'route="/v1/jobs/{{job_id}}",status="200"}}'
        for bound in ("0.005", "0.01", "0.025")
    },
    "reads": 'pixtools_http_request_seconds_count{method="GET",route="/v1/jobs/{job_id}",status="200"}',
}


async def gateway_counts(session: aiohttp.ClientSession) -> dict[str, float]:
    """The gateway's CPU seconds, and the submissions it refused through the whole route and in all, so far."""
    async with session.get("/metrics") as answer:
        text = await answer.text()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(values.get(series, 0.0)) for name, series in GATEWAY_SERIES.items()}


def a_answers_around_b_reads(
    timed: list[tuple[float, float]], answered_at: list[float], p99_ms: float
) -> dict[str, float]:
    """How many of A's answers came in the 100 ms before each of B's reads ended: for B's reads at or over the
    burst p99 against all of B's burst reads (medians). Much more around the slow ones means B's slowest reads
    wait behind A's clumps (A's connections answered and sending again together), not behind A's average load."""
    ends = sorted(answered_at)

    def around(start: float, latency_ms: float) -> int:
        end = start + latency_ms / 1000
        return bisect.bisect_right(ends, end) - bisect.bisect_left(ends, end - SLICE_S)

    def median_around(reads: list[tuple[float, float]]) -> float:
        return percentile([float(around(start, ms)) for start, ms in reads], 0.5) if reads else 0.0

    return {
        "a_answers_in_100ms_before_b_slow_reads_median": median_around([read for read in timed if read[1] >= p99_ms]),
        "a_answers_in_100ms_before_b_reads_median": median_around(timed),
    }


def most_in_a_slice(times: list[float], after_s: float = 0.0) -> int:
    """The most of `times` (seconds) falling in one `SLICE_S` slice at or after `after_s`; 0 when none do."""
    slices = Counter(int(at / SLICE_S) for at in times if at >= after_s)
    return max(slices.values(), default=0)


async def send_burst(base: str, key: str, count: int, concurrency: int) -> dict[str, float | list[float]]:
    """`count` submissions as fast as `concurrency` connections allow; status counts, duration, 202 clumping."""
    statuses: Counter[int] = Counter()
    accepted_at: list[float] = []
    answered_at: list[float] = []  # every answer, on the system-wide monotonic clock (comparable with B's)
    pending = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers={"X-API-Key": key}) as session:

        async def worker() -> None:
            for _ in pending:
                async with session.post("/v1/jobs", json=URL_JOB) as answer:
                    await answer.read()
                    statuses[answer.status] += 1
                    answered_at.append(time.perf_counter())
                    if answer.status == 202:
                        accepted_at.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    clumping = {"most_202_per_slice": most_in_a_slice(accepted_at), "most_202_per_slice_after_2s": 0}
    clumping["most_202_per_slice_after_2s"] = most_in_a_slice(accepted_at, after_s=2.0)
    return {
        "seconds": seconds,
        **clumping,
        **{str(status): float(n) for status, n in statuses.items()},
        "answered_at": answered_at,
    }


def burst_process(
    base: str, key: str, count: int, concurrency: int, nice: int, results: "multiprocessing.Queue[str]"
) -> None:
    """The burst, in a process of its own, at `nice` (its own CPU priority; 0 = the stack's)."""
    os.nice(nice)
    results.put(json.dumps(asyncio.run(send_burst(base, key, count, concurrency))))


async def read_at_rate(
    session: aiohttp.ClientSession,
    path: str,
    rate: float,
    until: "asyncio.Future[object] | float",
    timed: list[tuple[float, float]] | None = None,
) -> tuple[list[float], Counter[int]]:
    """Latencies (ms) and statuses of GETs sent at `rate`/s, open loop, until `until` (a deadline or a future).

    `timed`, when given, also gets each read's (start on the monotonic clock, latency in ms).
    """
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def one() -> None:
        started = time.perf_counter()
        async with session.get(path) as answer:
            await answer.read()
            statuses[answer.status] += 1
        latencies.append((time.perf_counter() - started) * 1000)
        if timed is not None:
            timed.append((started, latencies[-1]))

    tasks = []
    started = time.perf_counter()
    sent = 0
    while not (until.done() if isinstance(until, asyncio.Future) else time.perf_counter() >= until):
        tasks.append(asyncio.create_task(one()))
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    return latencies, statuses


async def run(args: argparse.Namespace, base: str, env: dict[str, str]) -> dict[str, float]:
    reader_key = new_tenant_key(env)
    burster_key = new_tenant_key(env)
    async with aiohttp.ClientSession(base, headers={"X-API-Key": reader_key}) as session:
        async with session.post("/v1/jobs", json=URL_JOB) as answer:
            job_path = f"/v1/jobs/{(await answer.json())['job_id']}"
        await read_at_rate(session, job_path, args.read_rate, time.perf_counter() + 1)  # warm-up
        counts_idle = await gateway_counts(session)
        idle, idle_statuses = await read_at_rate(
            session, job_path, args.read_rate, time.perf_counter() + args.idle_seconds
        )

        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this event loop
        results: multiprocessing.Queue[str] = spawn.Queue()
        burster = spawn.Process(
            target=burst_process, args=(base, burster_key, args.burst, args.concurrency, args.burst_nice, results)
        )
        loop = asyncio.get_running_loop()
        finished = loop.run_in_executor(None, functools.partial(results.get, timeout=600))
        counts_before = await gateway_counts(session)
        idle_counts = {name: counts_before[name] - counts_idle[name] for name in counts_before}
        burst_started_at = time.time()
        burster.start()
        timed: list[tuple[float, float]] = []
        during, during_statuses = await read_at_rate(session, job_path, args.read_rate, finished, timed)
        burster.join()
        burst_ended_at = time.time()
        counts = {name: value - counts_before[name] for name, value in (await gateway_counts(session)).items()}
        burst = json.loads(finished.result())
    idle_p99 = percentile(idle, 0.99)
    during_p99 = percentile(during, 0.99)
    crowding = a_answers_around_b_reads(timed, burst["answered_at"], during_p99)
    return {
        **crowding,
        "burst_requests": args.burst,
        "burst_nice": args.burst_nice,
        "burst_seconds": burst["seconds"],
        "burst_202": burst.get("202", 0),
        "burst_429": burst.get("429", 0),
        "burst_429_share": burst.get("429", 0) / args.burst,
        "a_most_202_per_100ms": burst["most_202_per_slice"],
        "a_429_through_the_whole_route": counts["refused_in_full"],
        "a_429_in_all": counts["refused_in_all"],
        "gateway_cpu_s_during_burst": counts["gateway_cpu_s"],
        "a_most_202_per_100ms_after_2s": burst["most_202_per_slice_after_2s"],
        "b_idle_reads": len(idle),
        "b_idle_not_200": len(idle) - idle_statuses[200],
        "b_idle_p50_ms": percentile(idle, 0.5),
        "b_idle_p99_ms": idle_p99,
        "b_idle_reads_at_or_over_p99": reads_at_or_over_p99(idle),
        "b_burst_reads": len(during),
        "b_burst_not_200": len(during) - during_statuses[200],
        "b_burst_p50_ms": percentile(during, 0.5),
        "b_burst_p99_ms": during_p99,
        "b_burst_reads_at_or_over_p99": reads_at_or_over_p99(during),
        "b_p99_ratio": during_p99 / idle_p99,
        # Wall-clock bounds of the burst, to line the gateway's own logs or probes up with the phases.
        "burst_started_at": burst_started_at,
        "burst_ended_at": burst_ended_at,
        **{
            f"b_server_share_over_{bound}_ms_{phase}": 1
            - phase_counts[f"reads_within_{le}"] / max(1.0, phase_counts["reads"])
            for phase, phase_counts in (("idle", idle_counts), ("burst", counts))
            for bound, le in (("5", "0.005"), ("10", "0.01"), ("25", "0.025"))
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=5000, help="submissions in tenant A's burst")
    parser.add_argument("--concurrency", type=int, default=100, help="connections the burst uses at once")
    parser.add_argument(
        "--read-rate", type=float, default=60.0, help="tenant B's reads per second (its limit is 100/s)"
    )
    parser.add_argument(
        "--burst-nice",
        type=int,
        default=0,
        help="CPU niceness of the burst's process: A's clients run on machines of their own in a deployment, "
        "here they share the cores; 10 lets the stack and B's timing go first when the cores are contended",
    )
    parser.add_argument("--idle-seconds", type=float, default=35.0, help="how long B reads before A's burst")
    parser.add_argument("--limits", choices=("on", "off"), default="on", help="off: limits out of reach")
    parser.add_argument("--no-redis", action="store_true", help="count limits in the gateway process")
    parser.add_argument("--namespace", default=NAMESPACE, help="the stack's namespace (queues and exchanges)")
    parser.add_argument("--database", default="pixtools_bench", help="the Postgres database the stack uses")
    parser.add_argument(
        "--hold-s", type=float, default=None, help="PIXTOOLS_REFUSAL_HOLD_S for the gateway (default: its own)"
    )
    args = parser.parse_args()
    env = {
        "PIXTOOLS_NAMESPACE": args.namespace,
        "PIXTOOLS_DATABASE_URL": DATABASE_URL.format(database=args.database),
        "PIXTOOLS_BLOB_DIR": str(ROOT / "var" / "bench-blobs"),
        "PIXTOOLS_LOG_LEVEL": "WARNING",
        "PIXTOOLS_RELAY_ENABLED": "false",
    }
    if not args.no_redis:
        env["PIXTOOLS_REDIS_URL"] = "redis://localhost:6379/0"
    if args.limits == "off":
        env |= {"PIXTOOLS_SUBMISSIONS_PER_S": "1000000", "PIXTOOLS_UNFINISHED_JOBS_QUOTA": "1000000"}
    if args.hold_s is not None:
        env["PIXTOOLS_REFUSAL_HOLD_S"] = str(args.hold_s)
    with running_stack(ROOT, env=env, ports=PORTS, gpu_stages=False) as stack:
        admin_env = {**os.environ, "PIXTOOLS_DATABASE_URL": env["PIXTOOLS_DATABASE_URL"]}
        load_before = os.getloadavg()[0]
        figures = asyncio.run(run(args, stack.gateway_url, admin_env))
        figures |= {"load_1m_before": load_before, "load_1m_after": os.getloadavg()[0]}
    print(json.dumps({key: round(value, 3) for key, value in figures.items()}, indent=2))
    print(
        f"B p99 during A's burst / B idle p99 = {figures['b_p99_ratio']:.2f}x (target: 2x or less); "
        f"B p99 {figures['b_idle_p99_ms']:.1f} -> {figures['b_burst_p99_ms']:.1f} ms "
        f"(on {figures['b_idle_reads_at_or_over_p99']:.0f} / {figures['b_burst_reads_at_or_over_p99']:.0f} reads); "
        f"A 429 share {figures['burst_429_share']:.0%}; "
        f"A's most 202s in 100 ms {figures['a_most_202_per_100ms']:.0f} "
        f"(after 2 s: {figures['a_most_202_per_100ms_after_2s']:.0f}); "
        f"load {load_before:.1f} -> {figures['load_1m_after']:.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
