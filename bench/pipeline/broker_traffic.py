"""What each client connection costs the broker per job: socket reads and writes, bytes, and AMQP methods.

RabbitMQ's management API keeps, for each open connection, how many times the broker read from and wrote to its
socket (`recv_cnt`, `send_cnt`) and the bytes, and for each channel the publishes, confirms, deliveries and acks.
The stack's connections close when the benchmark stops its stack, taking their counters with them, so this script
samples them once a second while a benchmark runs beside it, keeps each connection's last reading (they count from
the connection's opening), and divides by the jobs the run submitted:

    .venv/bin/python bench/pipeline/broker_traffic.py --seconds 70 --jobs 355 &
    flock /tmp/bench.lock .venv/bin/python bench/pipeline/bench_pipeline.py --runs 1
    wait

`--jobs` is every job of the run (bench_pipeline: 5 warm-up + `--unloaded` + `--jobs`, 355 by default). The
counters include each connection's start-up, a few frames. The management API refreshes them every 5 s (its
`collect_statistics_interval`), so let the sampling run a few seconds past the burst.
"""

import argparse
import json
import time
from typing import Any

from queue_counts import management_listing  # this script's folder is on the path when it runs

CONNECTION_COUNTERS = ("recv_cnt", "send_cnt", "recv_oct", "send_oct")


def sample(url: str, user: str, password: str, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The last reading of every connection and channel seen within `seconds`, by name."""
    connections: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            for connection in management_listing(url, user, password, "/api/connections"):
                label = (connection.get("client_properties") or {}).get("connection_name") or "unnamed"
                connections[f"{label} :{connection.get('peer_port')}"] = {
                    counter: connection.get(counter) or 0 for counter in CONNECTION_COUNTERS
                }
            for channel in management_listing(url, user, password, "/api/channels"):
                stats = channel.get("message_stats") or {}
                channels[channel["name"]] = {
                    name: value for name, value in stats.items() if not name.endswith("_details") and value
                }
        except OSError as error:  # the broker busy or restarting: the next second's reading will do
            print(f"sample skipped: {error}")
        time.sleep(1)
    return connections, channels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=70)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--url", default="http://localhost:15672")
    parser.add_argument("--user", default="guest")
    parser.add_argument("--password", default="guest")
    parser.add_argument("--json", help="also write the raw readings to this file")
    args = parser.parse_args()
    connections, channels = sample(args.url, args.user, args.password, args.seconds)
    print(f"per job, over {args.jobs} jobs: " + ", ".join(f"{c}" for c in CONNECTION_COUNTERS))
    for name, counters in sorted(connections.items()):
        print(f"  {name:40} " + "  ".join(f"{counters[c] / args.jobs:8.2f}" for c in CONNECTION_COUNTERS))
    print("AMQP methods per job, by channel:")
    for name, stats in sorted((name, stats) for name, stats in channels.items() if stats):
        rates = "  ".join(f"{method} {count / args.jobs:.2f}" for method, count in sorted(stats.items()))
        print(f"  {name:40} {rates}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"jobs": args.jobs, "connections": connections, "channels": channels}, out, indent=1)


if __name__ == "__main__":
    main()
