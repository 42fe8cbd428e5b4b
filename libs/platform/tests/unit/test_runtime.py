"""The worker entry point: serve until SIGTERM, then drain; what start-up built is kept out of the collector's scans."""

import subprocess
import sys
import textwrap

# Run in a child: `serve` installs SIGTERM and SIGINT handlers on its loop, which the test session's loop must keep.
_WORKER = textwrap.dedent(
    """
    import asyncio, gc, os, signal
    from pixtools_platform.runtime import run

    class Worker:
        async def start(self):
            self.built = [{"kept": index} for index in range(1000)]
            print("frozen at start", gc.get_freeze_count(), flush=True)
            asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)

        async def stop(self):
            print("frozen at stop", gc.get_freeze_count(), flush=True)

    run(Worker)
    """
)


def test_serve_freezes_what_start_built_and_stops_on_sigterm():
    finished = subprocess.run([sys.executable, "-c", _WORKER], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    counts = dict(line.rsplit(" ", 1) for line in finished.stdout.splitlines())
    assert int(counts["frozen at start"]) == 0
    # Everything alive once `start` returned, the worker's own objects among them, is in the permanent generation.
    assert int(counts["frozen at stop"]) > 1000
