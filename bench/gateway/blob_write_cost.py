"""Thread CPU of one local blob-store write, as the gateway's writer thread spends it on each upload.

Times `LocalBlobStore._write` (mkdir of a new job directory, temporary file, write, fsync, rename) of a
bench-sized original into new job directories under `--root`, one write every 5 ms so that the disk's write-back
does not pile up. Reports the median and mean thread CPU per write. Run it with a worktree's own venv to measure
that worktree's blob store; interleave builds with one lock per run.

    .venv/bin/python bench/gateway/blob_write_cost.py [--writes 300] [--bytes 210000] [--root var/blob-write-cost]
"""

import argparse
import os
import shutil
import statistics
import time
import uuid
from pathlib import Path

from pixtools_platform.blobstore.local import LocalBlobStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--bytes", type=int, default=210_000)
    parser.add_argument("--root", type=Path, default=Path("var/blob-write-cost"))
    args = parser.parse_args()
    data = os.urandom(args.bytes)
    tenant = args.root / "originals" / "tenant"
    tenant.mkdir(parents=True, exist_ok=True)
    spent = []
    try:
        for _ in range(args.writes):
            path = tenant / uuid.uuid4().hex / "original"
            started = time.thread_time()
            LocalBlobStore._write(path, data)
            spent.append(time.thread_time() - started)
            time.sleep(0.005)
    finally:
        shutil.rmtree(args.root, ignore_errors=True)
    print(f"median_us={statistics.median(spent) * 1e6:.1f} mean_us={statistics.mean(spent) * 1e6:.1f} n={len(spent)}")


if __name__ == "__main__":
    main()
