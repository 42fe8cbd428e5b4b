"""Real Postgres and RabbitMQ for the aggregator: a running service, seeded jobs, step events and webhook receivers."""

import asyncio
import base64
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_aggregator.app import create_app
from pixtools_aggregator.routing import SERVICE, job_event_routes
from pixtools_aggregator.settings import AggregatorSettings
from pixtools_contracts import (
    ErrorInfo,
    Event,
    JobCancelled,
    ObjectRef,
    Pipeline,
    SourceFailed,
    SourceFetched,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepStarted,
    flatten,
    parse_event,
    plan,
)
from pixtools_db import Batch, Job, Outbox, Step, Tenant, WebhookDelivery, create_engine, session_factory
from pixtools_platform.broker import Publisher, Topology
from pixtools_platform.routing import event_routing_keys
from pixtools_platform.service import Service
from pixtools_testkit.fixtures import TEST_RETRY

pytestmark = pytest.mark.integration


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail with the last value after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last value {value!r})")
        await asyncio.sleep(interval)


def metric(name: str, **labels: str) -> float:
    """Current value of a Prometheus sample, 0 when it was never set."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def settle_leftovers(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Mark pending deliveries failed and unpublished outbox rows published, so no service picks them up."""
    async with sessions.begin() as session:
        await session.execute(text("UPDATE webhook_deliveries SET state = 'failed' WHERE state = 'pending'"))
        await session.execute(text("UPDATE outbox SET published_at = now() WHERE published_at IS NULL"))


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[Any]]:
    """`await wait_until(check, within)` polls an async check until it is truthy."""
    return eventually


@pytest.fixture
def metric_value() -> Callable[..., float]:
    """`metric_value(name, **labels)` reads a Prometheus sample."""
    return metric


@pytest_asyncio.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database, with leftovers of other tests settled before and after."""
    engine = create_engine(database_url, pool_size=2)
    factory = session_factory(engine)
    await settle_leftovers(factory)
    yield factory
    # Other packages' relays share this database; leave them nothing of ours to publish or send.
    await settle_leftovers(factory)
    await engine.dispose()


@pytest.fixture
def settings_for(database_url: str, infra: Any, namespace: str) -> Callable[..., AggregatorSettings]:
    """Settings for a service on this test's namespace, with delays in tenths of seconds."""

    def build(**overrides: Any) -> AggregatorSettings:
        values: dict[str, Any] = {
            "env": "test",
            "database_url": database_url,
            "amqp_url": infra.amqp_url,
            "namespace": namespace,
            "ops_port": 0,
            "retry": TEST_RETRY,
            "drain_seconds": 2.0,
            "outbox_poll_s": 0.05,
            "webhook_poll_s": 0.05,
            "webhook_retry_schedule": [0.2, 0.2, 0.2],
            "webhook_jitter": 0.0,
            "webhook_timeout_s": 2.0,
            "webhook_lease_s": 5.0,
            "webhook_allow_cidrs": ["127.0.0.0/8"],
        }
        return AggregatorSettings(**(values | overrides))

    return build


@pytest_asyncio.fixture
async def start_aggregator(
    sessions: async_sessionmaker[AsyncSession], settings_for: Callable[..., AggregatorSettings]
) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """Start the real service (consumer, relay, dispatcher) with setting overrides; stopped after the test."""
    started: list[Service] = []

    async def start(**overrides: Any) -> Service:
        app = create_app(settings_for(**overrides))
        await app.start()
        started.append(app)
        return app

    yield start
    for app in started:
        await app.stop()


async def _no_transactions() -> Any:
    raise AssertionError("only the routing keys are read")


@pytest_asyncio.fixture
async def parked_queue(infra: Any, namespace: str) -> AsyncIterator[None]:
    """The aggregator's queue, declared as the service declares it, so that events wait there until it starts."""
    connection = await aio_pika.connect(infra.amqp_url)
    channel = await connection.channel()
    routing_keys = event_routing_keys(job_event_routes(_no_transactions))  # type: ignore[arg-type]
    await Topology(namespace).declare_service(channel, SERVICE, routing_keys, TEST_RETRY)
    yield
    await connection.close()


@pytest_asyncio.fixture
async def publisher(infra: Any, namespace: str) -> AsyncIterator[Publisher]:
    """A confirming publisher on this test's namespace, as a stage service would use."""
    connection = await aio_pika.connect_robust(infra.amqp_url)
    yield await Publisher.open(connection, Topology(namespace))
    await connection.close()


class TerminalEvents:
    """A queue of this test's own bound to the terminal job events, as another team would bind it."""

    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self._queue = queue

    async def next_for(self, job_id: uuid.UUID, within: float = 10.0) -> Event:
        """The next terminal event of a job (events of other jobs are skipped)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            message = await self._queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            event = parse_event(message.body)
            if event.job_id == job_id:
                return event
        raise AssertionError(f"no terminal event for job {job_id} within {within}s")

    async def collect(
        self, job_ids: list[uuid.UUID], within: float = 30.0, settle: float = 1.0
    ) -> dict[uuid.UUID, list[Event]]:
        """Every terminal event published for these jobs, copies included: read until every job has one, then
        `settle` more seconds, so that a later copy would be counted too."""
        found: dict[uuid.UUID, list[Event]] = {job_id: [] for job_id in job_ids}
        deadline = time.monotonic() + within
        quiet_until: float | None = None
        while time.monotonic() < (quiet_until or deadline):
            message = await self._queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                event = parse_event(message.body)
                if event.job_id in found:
                    found[event.job_id].append(event)
            if quiet_until is None and all(found.values()):
                quiet_until = time.monotonic() + settle
        return found


@pytest_asyncio.fixture
async def terminal_events(infra: Any, namespace: str) -> AsyncIterator[TerminalEvents]:
    """Reads job.completed.v1 and job.failed.v1 from `<namespace>.events`."""
    connection = await aio_pika.connect(infra.amqp_url)
    channel = await connection.channel()
    exchange = await Topology(namespace).declare_exchanges(channel)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for key in ("job.completed.v1", "job.failed.v1"):
        await queue.bind(exchange, routing_key=key)
    yield TerminalEvents(queue)
    await connection.close()


@dataclass
class SeededJob:
    """A job written the way the gateway writes it, and the means to talk about its steps."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    secret: str
    ops: dict[str, str] = field(default_factory=dict)

    def ids(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "tenant_id": self.tenant_id,
            "correlation_id": f"corr-{self.id}",
            "producer": "ingest",
        }

    def started(self, step_id: str) -> StepStarted:
        return StepStarted(step_id=step_id, op=self.ops[step_id], **self.ids())

    def completed(self, step_id: str, *, result: dict[str, Any] | None = None, **extra: Any) -> StepCompleted:
        image = ObjectRef(key=f"jobs/{self.id}/{step_id}/image", content_type="image/webp", bytes=100, sha256="a" * 64)
        outputs = [
            StepOutput(name="image", role="image", width=8, height=6, **image.model_dump(exclude={"width", "height"}))
        ]
        if result is not None:
            meta = ObjectRef(
                key=f"jobs/{self.id}/{step_id}/meta.json", content_type="application/json", bytes=20, sha256="b" * 64
            )
            outputs.append(StepOutput(name="metadata", role="artifact", **meta.model_dump()))
        now = datetime.now(UTC)
        return StepCompleted(
            step_id=step_id, op=self.ops[step_id], started_at=now, finished_at=now, image=image,
            outputs=outputs, result=result, **self.ids(), **extra,
        )  # fmt: skip

    def failed(self, step_id: str, code: str = "image.corrupt") -> StepFailed:
        return StepFailed(
            step_id=step_id, op=self.ops[step_id], error=ErrorInfo(code=code, message="bad"), **self.ids()
        )

    def fetched(self, url: str = "https://images.example/cat.jpg") -> SourceFetched:
        original = ObjectRef(
            key=f"originals/{self.tenant_id}/{self.id}", content_type="image/png", bytes=4321, sha256="d" * 64,
            width=640, height=480,
        )  # fmt: skip
        return SourceFetched(url=url, final_url=url, input=original, attempts=1, **self.ids())

    def fetch_failed(self, code: str = "fetch.http_status", message: str = "HTTP 404") -> SourceFailed:
        error = ErrorInfo(code=code, message=message)
        return SourceFailed(url="https://images.example/gone.jpg", error=error, attempts=1, **self.ids())

    def cancelled(self) -> JobCancelled:
        return JobCancelled(**(self.ids() | {"producer": "gateway"}))


class Database:
    """Seeds tenants, jobs and deliveries, and reads back what the service wrote."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def tenant(self) -> tuple[uuid.UUID, str]:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        tenant = Tenant(id=uuid.uuid4(), name=f"tenant-{secrets.token_hex(6)}", webhook_secret=secret)
        async with self.sessions.begin() as session:
            session.add(tenant)
        return tenant.id, secret

    async def job(
        self,
        pipeline: list[Any],
        *,
        webhook_url: str | None = None,
        state: str = "accepted",
        tenant: tuple[uuid.UUID, str] | None = None,
        batch_id: uuid.UUID | None = None,
        source_url: str | None = None,
    ) -> SeededJob:
        """A job as the gateway writes it; a URL job (`source_url`) has no input until it is fetched."""
        tenant_id, secret = tenant or await self.tenant()
        planned = flatten(plan(Pipeline.model_validate(pipeline)))
        job = Job(
            id=uuid.uuid4(), tenant_id=tenant_id, state=state, pipeline=pipeline, step_count=len(planned),
            leaf_count=sum(step.is_leaf for step in planned), webhook_url=webhook_url, batch_id=batch_id,
            source_url=source_url,
        )  # fmt: skip
        if source_url is None:
            job.input_key, job.input_content_type = "originals/x.jpg", "image/jpeg"
            job.input_bytes, job.input_sha256 = 1000, "c" * 64
        job.correlation_id = f"corr-{job.id}"
        async with self.sessions.begin() as session:
            session.add(job)
            await session.flush()
            for position, step in enumerate(planned):
                session.add(
                    Step(
                        job_id=job.id, step_id=step.id, position=position, parent_id=step.parent_id,
                        op=step.spec.op, params=step.spec.params.model_dump(mode="json"), is_leaf=step.is_leaf,
                    )
                )  # fmt: skip
        return SeededJob(job.id, tenant_id, secret, {step.id: step.spec.op for step in planned})

    async def batch(
        self,
        tenant: tuple[uuid.UUID, str],
        *,
        webhook_url: str | None = None,
        state: str = "running",
        cancelled: bool = False,
    ) -> uuid.UUID:
        """A batch row as the gateway writes it; its jobs are seeded with `job(..., batch_id=...)`."""
        batch = Batch(
            id=uuid.uuid4(), tenant_id=tenant[0], state=state, source="urls", pipeline=[], item_count=0,
            duplicates=[], webhook_url=webhook_url, correlation_id="corr-batch",
            cancelled_at=datetime.now(UTC) if cancelled else None,
        )  # fmt: skip
        async with self.sessions.begin() as session:
            session.add(batch)
        return batch.id

    async def delivery(self, url: str, tenant_id: uuid.UUID | None = None) -> uuid.UUID:
        tenant_id = tenant_id or (await self.tenant())[0]
        delivery = WebhookDelivery(
            id=uuid.uuid4(), tenant_id=tenant_id, url=url, event_type="job.completed.v1",
            payload=b'{"type":"job.completed.v1"}', state="pending", attempts=0,
        )  # fmt: skip
        async with self.sessions.begin() as session:
            session.add(delivery)
        return delivery.id

    async def get(self, model: type, *key: Any) -> Any:
        async with self.sessions() as session:
            return await session.get(model, key if len(key) > 1 else key[0], populate_existing=True)

    async def rows_per_job(self, model: type, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """How many rows of `model` each job has (outbox rows are matched by the job id in their body)."""
        counts = {}
        async with self.sessions() as session:
            for job_id in job_ids:
                by_body = Outbox.body.contains(str(job_id).encode())
                where = by_body if model is Outbox else model.job_id == job_id  # type: ignore[attr-defined]
                counts[job_id] = await session.scalar(select(func.count()).select_from(model).where(where)) or 0
        return counts

    async def outbox_emptied(self, job_ids: list[uuid.UUID]) -> bool:
        """True once no outbox row of these jobs is left: the relays delete a row when its publish is confirmed."""
        return set((await self.rows_per_job(Outbox, job_ids)).values()) == {0}

    async def all_in_state(self, job_ids: list[uuid.UUID], state: str) -> bool:
        """True when every one of these jobs is in `state`."""
        async with self.sessions() as session:
            states = list(await session.scalars(select(Job.state).where(Job.id.in_(job_ids))))
        return len(states) == len(job_ids) and all(found == state for found in states)

    async def steps(self, job_id: uuid.UUID) -> dict[str, Step]:
        async with self.sessions() as session:
            rows = await session.scalars(select(Step).where(Step.job_id == job_id))
            return {row.step_id: row for row in rows}


@pytest.fixture
def db(sessions: async_sessionmaker[AsyncSession]) -> Database:
    """Seed and inspect the test database."""
    return Database(sessions)
