"""CPU per NOTIFY of the gateway's listening connections: Postgres's backends and the listening process.

Postgres 15 signals every backend that LISTENs in the database at each committed NOTIFY, whatever its channels.
A gateway process listens on two connections today: job and batch changes (`adapters/notifications.py`) and
API-key changes (`adapters/key_cache.py`). This script sends paced NOTIFYs on the jobs channel, as the aggregator
does, with the listeners in a child process laid out as one of:

- `none`: nobody listens;
- `one`: one connection listening on the jobs, batches and API-key channels;
- `two`: one connection on the jobs and batches channels, and one on the API-key channel (the gateway before
  `gwdeps`);
- `gateway`: the gateway's own listening connection, built by its code as `app.py` builds it (`KeyCache` and
  `JobNotifications`, the key cache's 0.25 s ping included) with no event stream open: run with a build's
  interpreter to measure that build (before `sselisten` it listens on the jobs channel anyway, after it does not);
- `gateway-flapping`: the same with a stream opening and closing every `--flap-ms` (`JobNotifications.watch`,
  open 1 ms; UNLISTEN `--linger-ms` after the last leaves), on builds that have `JobNotifications(key_cache)`:
  with a linger shorter than the gap every stream sends a LISTEN and an UNLISTEN (the child reports `streams`).

and reports, per NOTIFY, the CPU (utime + stime from /proc/<pid>/stat) of the sender's backend, of each listening
backend, and of the listening process (on uvloop, as the served gateway). Variants run in rotation, `--rounds`
times each, on a database of their own.

    .venv/bin/python bench/gateway/notify_cost.py [--notifies 2000] [--interval-ms 2] [--rounds 3] [--database D]
        [--layouts none,one,two,gateway] [--flap-ms 50] [--linger-ms 200]
"""

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import asyncpg
import uvloop

DATABASE = "pixtools_bench_notify_cost"
JOBS, BATCHES, KEYS = "pixtools_jobs", "pixtools_batches", "pixtools_api_keys"
LAYOUTS = {
    "none": [],
    "one": [[JOBS, BATCHES, KEYS]],
    "two": [[JOBS, BATCHES], [KEYS]],
    "gateway": [],
    "gateway-flapping": [],
}
DEFAULT_LAYOUTS = "none,one,two,gateway"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def listen_as_gateway(dsn: str, flap_s: float | None, linger_s: float) -> None:
    """The child for `gateway`: the gateway's listening connection, by its own code, counting job notifications."""
    from pixtools_gateway.adapters.key_cache import KeyCache
    from pixtools_gateway.adapters.notifications import JobNotifications

    received = 0

    def counted(some_id: str) -> None:
        nonlocal received
        received += 1

    if "channels" in inspect.signature(KeyCache).parameters:  # before sselisten: the job channels, always
        notifications = JobNotifications()  # type: ignore[call-arg]
        notifications.changed = counted  # type: ignore[method-assign]
        cache = KeyCache(dsn, 300, channels=notifications.channels)  # type: ignore[call-arg]
        await cache.start()
    else:
        cache = KeyCache(dsn, 300)
        await cache.start()
        notifications = JobNotifications(cache, linger_s=linger_s)
        notifications.changed = counted  # type: ignore[method-assign]
    assert cache._connection is not None
    print(json.dumps({"pids": [cache._connection.get_server_pid()]}), flush=True)

    streams = 0

    async def flap() -> None:
        nonlocal streams
        assert flap_s is not None
        while True:
            streams += 1
            async with notifications.watch(str(uuid.uuid4())):
                await asyncio.sleep(0.001)
            await asyncio.sleep(flap_s)

    flapping = asyncio.create_task(flap()) if flap_s is not None else None
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if flapping is not None:
        flapping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flapping
    print(json.dumps({"received": received, "streams": streams}), flush=True)
    await cache.stop()


async def listen(dsn: str, layout: str, flap_s: float | None = None, linger_s: float = 1.0) -> None:
    """The child: open the layout's connections, print their backends' pids, count notifications until stdin ends."""
    if layout.startswith("gateway"):
        await listen_as_gateway(dsn, flap_s if layout == "gateway-flapping" else None, linger_s)
        return
    received = 0

    def on_notify(connection: object, pid: int, channel: str, payload: str) -> None:
        nonlocal received
        received += 1

    connections = []
    for channels in LAYOUTS[layout]:
        connection = await asyncpg.connect(dsn)
        for channel in channels:
            await connection.add_listener(channel, on_notify)
        connections.append(connection)
    pids = [await connection.fetchval("SELECT pg_backend_pid()") for connection in connections]
    print(json.dumps({"pids": pids}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print(json.dumps({"received": received}), flush=True)
    for connection in connections:
        await connection.close()


async def measure(
    dsn: str, layout: str, notifies: int, interval_s: float, flap_ms: float, linger_ms: float
) -> dict[str, float | int]:
    """One run of a layout: microseconds of CPU per NOTIFY for the sender's backend, the listening backends and the
    listening process."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        layout,
        "--dsn",
        dsn,
        "--flap-ms",
        str(flap_ms),
        "--linger-ms",
        str(linger_ms),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    listeners: list[int] = json.loads(await child.stdout.readline())["pids"]
    sender = await asyncpg.connect(dsn)
    sender_pid = await sender.fetchval("SELECT pg_backend_pid()")
    await asyncio.sleep(0.5)
    pids = {
        "sender": sender_pid,
        "listening process": child.pid,
        **{f"listener {i}": p for i, p in enumerate(listeners)},
    }
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    for index in range(notifies):
        await sender.execute(f"NOTIFY {JOBS}, '{uuid.uuid4()}'")
        delay = started + (index + 1) * interval_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(0.5)  # the listeners catch up
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    child.stdin.write(b"\n")
    await child.stdin.drain()
    counted = json.loads(await child.stdout.readline())
    await child.wait()
    await sender.close()
    figures: dict[str, float | int] = {name: round((after[name] - before[name]) * 1e6 / notifies, 1) for name in pids}
    figures["listening backends"] = round(
        sum(value for name, value in figures.items() if name.startswith("listener ")), 1
    )
    figures["received"] = counted["received"]
    if "streams" in counted:
        figures["streams"] = counted["streams"]
    return figures


async def run(args: argparse.Namespace) -> None:
    dsn = f"postgresql://postgres@localhost:5432/{args.database}"
    layouts = args.layouts.split(",")
    results: dict[str, list[dict[str, float | int]]] = {layout: [] for layout in layouts}
    for _ in range(args.rounds):
        for layout in layouts:
            figures = await measure(dsn, layout, args.notifies, args.interval_ms / 1000, args.flap_ms, args.linger_ms)
            results[layout].append(figures)
            print(json.dumps({"layout": layout, **figures}), flush=True)
    summary = {
        layout: {
            name: statistics.median(float(run[name]) for run in runs)
            for name in ("sender", "listening backends", "listening process")
        }
        for layout, runs in results.items()
    }
    print(json.dumps({"median_us_per_notify": summary}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifies", type=int, default=2000)
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--layouts", default=DEFAULT_LAYOUTS, help=f"comma-separated, of {', '.join(LAYOUTS)}")
    parser.add_argument("--flap-ms", type=float, default=50.0, help="gateway-flapping: ms between streams")
    parser.add_argument("--linger-ms", type=float, default=200.0, help="gateway-flapping: JobNotifications' linger")
    parser.add_argument("--child", choices=list(LAYOUTS))
    parser.add_argument("--dsn")
    args = parser.parse_args()
    if args.child:
        uvloop.run(
            listen(args.dsn, args.child, args.flap_ms / 1000, args.linger_ms / 1000)
        )  # as the served gateway runs
        return
    subprocess.run(["createdb", "-h", "localhost", "-U", "postgres", args.database], check=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
