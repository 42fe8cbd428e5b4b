"""`pixtools-ingest` as a real process: it serves on uvloop, and SIGTERM drains the work in hand before it exits."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from pixtools_contracts import Pipeline, SourceFetched, SourceRequested, StepRequested, parse_event, plan
from pixtools_platform.broker import Publisher, Topology

from .conftest import SourceServer

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


class IngestProcess:
    """A `pixtools-ingest` process and the JSON log it writes."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def logged(self, message: str) -> dict[str, Any] | None:
        """The first JSON log record with this message, if the process has written it yet."""
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and (record := json.loads(line)).get("message") == message:
                return dict(record)
        return None

    async def wait_logged(self, message: str, seconds: float = 60) -> dict[str, Any]:
        """Poll the log until the process writes `message`; fail if it exits or takes longer than `seconds`."""
        deadline = time.monotonic() + seconds
        while (record := self.logged(message)) is None:
            assert self.process.poll() is None, f"exited with {self.process.returncode}:\n{self.tail()}"
            assert time.monotonic() < deadline, f"no {message!r} in time:\n{self.tail()}"
            await asyncio.sleep(0.1)
        return record

    async def terminate(self) -> int:
        """SIGTERM the process and wait for its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 60)

    def tail(self) -> str:
        """The end of the log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def ingest_process(infra, namespace, tmp_path) -> Iterator[IngestProcess]:
    """`pixtools-ingest` started by its console script on the test's namespace, killed if a test leaves it running."""
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PIXTOOLS_")},
        "PIXTOOLS_ENV": "test",
        "PIXTOOLS_AMQP_URL": infra.amqp_url,
        "PIXTOOLS_NAMESPACE": namespace,
        "PIXTOOLS_BLOB_BACKEND": "local",
        "PIXTOOLS_BLOB_DIR": str(tmp_path / "blobs"),
        "PIXTOOLS_OPS_PORT": "0",
        "PIXTOOLS_LOG_LEVEL": "INFO",
        "PIXTOOLS_LOG_JSON": "true",
        "PIXTOOLS_DRAIN_SECONDS": "20",
        "PIXTOOLS_FETCH_ALLOW_CIDRS": '["127.0.0.1/32"]',
    }
    log = tmp_path / "ingest.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(BIN / "pixtools-ingest")], env=env, stdout=output, stderr=output)
    try:
        yield IngestProcess(process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_ingest_console_script_serves_on_uvloop(ingest_process: IngestProcess):
    started = await ingest_process.wait_logged("started")
    assert started["event_loop"] == "uvloop.Loop"
    assert await ingest_process.terminate() == 0
    assert ingest_process.logged("stopped") is not None


async def test_sigterm_mid_fetch_finishes_the_fetch_before_the_worker_exits(
    ingest_process: IngestProcess, source_server: SourceServer, infra, namespace
):
    await ingest_process.wait_logged("started")
    topology = Topology(namespace)
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        outcomes = await channel.declare_queue(exclusive=True)
        for routing_key in ("source.fetched.v1", "step.completed.v1"):
            await outcomes.bind(topology.events, routing_key=routing_key)
        pipeline = Pipeline.model_validate([{"op": "metadata"}])
        request = SourceRequested(
            job_id=uuid.uuid4(),
            tenant_id=uuid.uuid4(),
            correlation_id="corr",
            producer="gateway",
            url=source_server.url("/slow"),  # answers after 5 s
            pipeline=pipeline,
            remaining=plan(pipeline),
            lane="interactive",
        )
        publisher = await Publisher.open(connection, topology)
        await publisher.publish(request)
        deadline = time.monotonic() + 30
        while source_server.requests["/slow"] == 0:
            assert time.monotonic() < deadline, f"the fetch never started:\n{ingest_process.tail()}"
            await asyncio.sleep(0.05)

        assert await ingest_process.terminate() == 0

        published = []
        while (message := await outcomes.get(fail=False, no_ack=True)) is not None:
            published.append(parse_event(message.body))
        # The fetch in hand finished and published; the first step it requested waits for the next worker.
        assert [type(event) for event in published] == [SourceFetched], ingest_process.tail()
        assert published[0].job_id == request.job_id
        ingest_queue = await channel.declare_queue(topology.queue("ingest"), passive=True)
        waiting = await ingest_queue.get(no_ack=True)
        step = parse_event(waiting.body)
        assert isinstance(step, StepRequested)
        assert step.job_id == request.job_id
        assert await ingest_queue.get(fail=False) is None, "the drained request was acked, not returned"
    finally:
        await connection.close()
