"""Messages routed to and delivered from each queue of a namespace, per job, from the management API's counters.

Snapshot the counters before and after a benchmark (inside its lock, so no other run mixes in), then divide:

    .venv/bin/python bench/pipeline/queue_counts.py snapshot before.json
    flock /tmp/bench-pipeline.lock .venv/bin/python bench/pipeline/bench_pipeline.py --runs 1 ...
    .venv/bin/python bench/pipeline/queue_counts.py snapshot after.json
    .venv/bin/python bench/pipeline/queue_counts.py diff before.json after.json --jobs 350

`--jobs` is the jobs the run submitted (bench_pipeline: --unloaded + --jobs per run, 50 + 300 by default).
"""

import argparse
import base64
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def management_listing(url: str, user: str, password: str, path: str) -> list[dict[str, Any]]:
    """One listing of RabbitMQ's management API (`path` such as /api/queues/%2F), as its JSON objects."""
    request = urllib.request.Request(f"{url}{path}")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        listing: list[dict[str, Any]] = json.load(response)
    return listing


def snapshot(url: str, user: str, password: str, namespace: str) -> dict[str, dict[str, object]]:
    """Each queue of the namespace: its type and its cumulative publish and deliver counters."""
    queues = management_listing(
        url, user, password, f"/api/queues/{urllib.parse.quote('/', safe='')}?columns=name,type,message_stats"
    )
    counts: dict[str, dict[str, object]] = {}
    for queue in queues:
        if not queue["name"].startswith(f"{namespace}."):
            continue
        stats = queue.get("message_stats") or {}
        counts[queue["name"]] = {
            "type": queue.get("type"),
            "publish": stats.get("publish", 0),
            "deliver": stats.get("deliver_get", 0),
        }
    return counts


def per_job(before: dict[str, dict[str, object]], after: dict[str, dict[str, object]], jobs: int) -> list[str]:
    """One line per queue that moved, then the totals."""
    lines = []
    routed = delivered = 0
    for name in sorted(after):
        old = before.get(name, {"publish": 0, "deliver": 0})
        new = after[name]
        published = int(str(new["publish"])) - int(str(old["publish"]))
        got = int(str(new["deliver"])) - int(str(old["deliver"]))
        if published or got:
            lines.append(f"{name:40s} {new['type']!s:8s} routed {published / jobs:5.2f}  delivered {got / jobs:5.2f}")
            routed += published
            delivered += got
    lines.append(f"{'all queues':40s} {'':8s} routed {routed / jobs:5.2f}  delivered {delivered / jobs:5.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://localhost:15672")
    parser.add_argument("--user", default="guest")
    parser.add_argument("--password", default="guest")
    parser.add_argument("--namespace", default="bench")
    commands = parser.add_subparsers(dest="command", required=True)
    snap = commands.add_parser("snapshot")
    snap.add_argument("file", type=Path)
    diff = commands.add_parser("diff")
    diff.add_argument("before", type=Path)
    diff.add_argument("after", type=Path)
    diff.add_argument("--jobs", type=int, required=True)
    args = parser.parse_args()
    if args.command == "snapshot":
        args.file.write_text(json.dumps(snapshot(args.url, args.user, args.password, args.namespace), indent=1))
    else:
        before = json.loads(args.before.read_text())
        after = json.loads(args.after.read_text())
        print("\n".join(per_job(before, after, args.jobs)))


if __name__ == "__main__":
    main()
