"""CPU and wall time of each file-system call the local blob store makes to store one step output, on this host.

The calls `LocalBlobStore._write` makes for a job's first step output (less its failed `mkdir` attempts, ~0.005 ms
each), in the job layout (`jobs/<tenant>/<job>/`, the job's folder made for the gateway's original, then `steps/`
and `steps/<id>/` by the stage), one output a job:

    python3 bench/pipeline/local_store_syscalls.py [--outputs 1000] [--rounds 2] [--dir var/syscall-probe]

Inode creation (each `mkdir`, the temporary file's `open(O_CREAT)`) is where this host's kernel CPU goes, and it
moved from 0.02 to 0.3 ms per call within minutes on the shared development machine (2026-12-05), most likely
because its ext4 has no journal and then skips inodes freed in the last minutes (a benchmark's cleanup frees
thousands): run it just before or after the benchmark it explains. Each round works in a fresh folder under --dir,
removed afterwards (so a second round shows the effect of the first one's deletions).
"""

import argparse
import contextlib
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


class Timings:
    """CPU (user + system) and wall seconds per call name, summed."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    @contextlib.contextmanager
    def of(self, name: str) -> Iterator[None]:
        """Add the block's CPU and wall time to `name`."""
        cpu, wall = _cpu(), time.perf_counter()
        yield
        self.cpu[name] = self.cpu.get(name, 0.0) + _cpu() - cpu
        self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def store_outputs(top: Path, outputs: int, data: bytes) -> Timings:
    """One job folder, then one step output in it, `outputs` times: the calls the local store makes, timed."""
    timings = Timings()
    tenant = top / "jobs" / "tenant"
    tenant.mkdir(parents=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for number in range(outputs):
        job = tenant / f"job{number}"
        step = job / "steps" / "0"
        temporary = step / ".tmp-output"
        with timings.of("mkdir jobs/<tenant>/<job> (gateway)"):
            os.mkdir(job)
        with timings.of("mkdir steps"):
            os.mkdir(job / "steps")
        with timings.of("mkdir steps/0"):
            os.mkdir(step)
        with timings.of("open(O_CREAT) temporary file"):
            descriptor = os.open(temporary, flags, 0o600)
        with timings.of("write 20 kB"):
            os.write(descriptor, data)
        with timings.of("fsync"):
            os.fsync(descriptor)
        with timings.of("close"):
            os.close(descriptor)
        with timings.of("rename over the key"):
            os.replace(temporary, step / "image.webp")
        with timings.of("mkdir of an existing folder"), contextlib.suppress(FileExistsError):
            os.mkdir(step)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outputs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("var/syscall-probe"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    data = os.urandom(20_000)
    for number in range(args.rounds):
        top = Path(tempfile.mkdtemp(dir=args.dir))
        try:
            timings = store_outputs(top, args.outputs, data)
        finally:
            shutil.rmtree(top)
        print(f"round {number} ({time.strftime('%H:%M:%S', time.gmtime())} UTC), ms per call: CPU / wall")
        for name, cpu in timings.cpu.items():
            print(f"  {name:40} {cpu / args.outputs * 1000:7.3f} / {timings.wall[name] / args.outputs * 1000:7.3f}")


if __name__ == "__main__":
    main()
