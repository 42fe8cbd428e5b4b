"""The ingest worker on a real broker: source requests in either lane are fetched, stored and started, or failed."""

import asyncio
import io
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import pytest_asyncio

from pixtools_contracts import (
    Event,
    Pipeline,
    SourceFailed,
    SourceFetched,
    SourceRequested,
    StepCompleted,
    parse_event,
    plan,
)
from pixtools_ingest.app import create_app
from pixtools_ingest.settings import IngestSettings
from pixtools_platform.broker import Publisher, Topology
from pixtools_platform.logs import ContextJsonFormatter
from pixtools_platform.telemetry import configure_tracing
from pixtools_testkit.fixtures import TEST_RETRY

from .conftest import SourceServer

pytestmark = pytest.mark.integration

PIPELINE = Pipeline.model_validate([{"op": "metadata"}])


class Observer:
    """A queue of the test's own bound to every event of the namespace."""

    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self._queue = queue
        self.seen: list[Event] = []

    async def wait_for(self, event_type: type[Event], job_id: uuid.UUID, within: float = 15.0) -> Any:
        """The first event of that type for the job, reading on until it arrives."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for event in self.seen:
                if isinstance(event, event_type) and event.job_id == job_id:
                    return event
            message = await self._queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                self.seen.append(parse_event(message.body))
        raise AssertionError(f"no {event_type.__name__} for job {job_id} within {within}s")


@pytest_asyncio.fixture
async def observer(infra: Any, namespace: str) -> AsyncIterator[Observer]:
    connection = await aio_pika.connect(infra.amqp_url)
    channel = await connection.channel()
    exchange = await Topology(namespace).declare_exchanges(channel)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="#")
    yield Observer(queue)
    await connection.close()


@pytest_asyncio.fixture
async def ingest(infra: Any, namespace: str, tmp_path: Path) -> AsyncIterator[Publisher]:
    """The real ingest worker, and a confirming publisher on its namespace."""
    settings = IngestSettings(
        env="test",
        amqp_url=infra.amqp_url,
        namespace=namespace,
        blob_dir=tmp_path / "blobs",
        ops_port=0,
        retry=TEST_RETRY,
        drain_seconds=2.0,
        cpu_workers=1,
        fetch_allow_cidrs=["127.0.0.1/32"],
        fetch_backoff_s=0.01,
        fetch_total_timeout_s=2.0,
    )
    worker = create_app(settings)
    await worker.start()
    connection = await aio_pika.connect_robust(infra.amqp_url)
    yield await Publisher.open(connection, Topology(namespace))
    await connection.close()
    await worker.stop()


def _request(url: str, lane: str) -> SourceRequested:
    return SourceRequested(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="corr",
        producer="gateway",
        url=url,
        pipeline=PIPELINE,
        remaining=plan(PIPELINE),
        lane=lane,
    )


@pytest.mark.parametrize("lane", ["interactive", "bulk"])
async def test_source_request_is_fetched_and_its_first_step_runs(
    source_server: SourceServer, observer: Observer, ingest: Publisher, lane: str
):
    request = _request(source_server.url("/image.png"), lane)
    await ingest.publish(request)
    fetched = await observer.wait_for(SourceFetched, request.job_id)
    completed = await observer.wait_for(StepCompleted, request.job_id)
    assert fetched.input.content_type == "image/png"
    assert (completed.step_id, completed.image) == ("0", fetched.input)


async def test_unfetchable_source_is_reported_failed_and_never_dead_lettered(
    source_server: SourceServer, observer: Observer, ingest: Publisher, infra: Any, namespace: str
):
    request = _request(source_server.url("/page.html"), "interactive")
    await ingest.publish(request)
    failed = await observer.wait_for(SourceFailed, request.job_id)
    assert failed.error.code == "fetch.not_an_image"
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        dead = await channel.declare_queue(Topology(namespace).dead_letter_queue("ingest"), passive=True)
        assert dead.declaration_result.message_count == 0
    finally:
        await connection.close()


@pytest.fixture
def json_log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the service's formatter writes while the test runs, read back as dicts."""
    configure_tracing("ingest", None)  # a recording tracer, as the service's main() installs
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ContextJsonFormatter("ingest"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous_level)


async def test_every_log_line_of_a_message_carries_its_job_correlation_event_step_and_trace(
    source_server: SourceServer, observer: Observer, ingest: Publisher, json_log_lines
):
    request = _request(source_server.url("/image.png"), "interactive")
    await ingest.publish(request)
    await observer.wait_for(StepCompleted, request.job_id)

    async def step_line_written() -> list[dict[str, Any]]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [line for line in json_log_lines() if line.get("job_id") == str(request.job_id)]
            if any(line["message"] == "step finished" for line in lines) and len(lines) >= 3:
                return lines
            await asyncio.sleep(0.05)
        raise AssertionError(f"no step line for job {request.job_id}: {json_log_lines()}")

    lines = await step_line_written()
    for line in lines:
        assert line["correlation_id"] == "corr"
        assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"]), line
        assert re.search(r"(Z|[+-]\d\d:\d\d)$", line["time"]), line
    by_type = {line["event_type"] for line in lines}
    assert {"source.requested.v1", "step.requested.v1"} <= by_type
    (step,) = [line for line in lines if line["message"] == "step finished"]
    assert (step["step_id"], step["op"], step["outcome"]) == ("0", "metadata", "succeeded")
    assert step["event_type"] == "step.requested.v1"
    assert step["duration_s"] >= 0
    handled = [line for line in lines if line["message"] == "message handled"]
    assert {line["outcome"] for line in handled} == {"acked"}
    assert len(handled) >= 2
