"""Run a worker on uvloop until SIGTERM or SIGINT, then drain it."""

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from typing import Protocol

import uvloop

log = logging.getLogger(__name__)


class Worker(Protocol):
    """A long-running service with an explicit start and a draining stop."""

    async def start(self) -> None:
        """Connect and begin work."""
        ...

    async def stop(self) -> None:
        """Stop taking work, drain what is in flight, release resources."""
        ...


async def serve(worker: Worker) -> None:
    """Start a worker, wait for a termination signal, then stop it."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await worker.start()
    # What start-up built (modules, models, compiled statements, pools) lives as long as the process. Frozen, it is
    # left out of the collector's scans: without this, a fresh aggregator's first full collection under load
    # re-scanned all of it (76-89 ms of CPU in each `bench/pipeline` run, 0.25-0.3 ms per job of its burst).
    gc.freeze()
    log.info("started", extra={"event_loop": f"{type(loop).__module__}.{type(loop).__qualname__}"})
    await stopping.wait()
    log.info("stopping: draining in-flight work")
    await worker.stop()
    log.info("stopped")


def run(build: Callable[[], Worker]) -> None:
    """Entry point for console scripts: build the worker and serve it on uvloop.

    aio-pika's frame handling and asyncpg's protocol run per message on the loop: uvloop's cost less CPU there.
    """
    uvloop.run(serve(build()))
