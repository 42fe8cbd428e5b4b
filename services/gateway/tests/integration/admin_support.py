"""What the admin API tests share: an admin key, a broker with the services' queues, events to dead-letter."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from pixtools_contracts import (
    Event,
    ObjectRef,
    Pipeline,
    SourceRequested,
    StepRequested,
    StepStarted,
    first_steps,
    plan,
)
from pixtools_db import create_engine, session_factory
from pixtools_gateway.app import create_app
from pixtools_gateway.handlers.tenants import add_api_key
from pixtools_gateway.settings import GatewaySettings
from pixtools_platform.broker import Consumer, PermanentError, Publisher, Topology, connect, encode_event
from pixtools_testkit.fixtures import TEST_RETRY

T = TypeVar("T")

SERVICE_KEYS = {
    "ingest": ["step.requested.v1.ingest", "source.requested.v1.ingest"],
    "ingest.bulk": ["step.requested.v1.ingest.bulk", "source.requested.v1.ingest.bulk"],
    "detect": ["step.requested.v1.detect"],
    "aggregator": ["step.started.v1"],
}
"""The queues these tests declare, as the services would; denoise is left undeclared on purpose."""


async def new_admin_key(database_url: str) -> str:
    """Create an admin API key the way `pixtools-admin create-admin-key` does."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            return await add_api_key(session, tenant_id=None)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def gateway(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a gateway app built from `settings`."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


def as_admin(key: str) -> dict[str, str]:
    """Headers authenticating with an admin key."""
    return {"Authorization": f"Bearer {key}"}


def problem(response: httpx.Response, status: int, slug: str) -> dict:
    """Assert a problem+json answer and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/" + slug)
    return body


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], seconds: float = 20.0) -> T:
    """Probe until `done` holds or the deadline passes; returns the last value for the test to assert on."""
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


@dataclass
class Rabbit:
    """A test's own view of the broker: the services' topology, a confirming publisher and queue probes."""

    connection: AbstractRobustConnection
    channel: AbstractChannel
    probe: AbstractChannel
    publisher: Publisher
    topology: Topology

    async def dead_letter(
        self,
        service: str,
        body: bytes,
        *,
        message_id: str,
        reason: str,
        routing_key: str,
        message_type: str | None = "step.requested.v1",
        attempt: int = 3,
        died_at: datetime | None = None,
    ) -> None:
        """Put a message in the service's dead-letter queue with the headers the platform consumer writes."""
        headers: dict[str, aio_pika.abc.FieldValue] = {
            "x-attempt": attempt,
            "x-death-reason": reason,
            "x-death-service": service,
            "x-death-at": (died_at or datetime.now(UTC)).isoformat(),
            "x-original-routing-key": routing_key,
        }
        message = aio_pika.Message(
            body,
            headers=headers,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=message_type,
        )
        await self.publisher.publish_message(service, message, exchange=self.topology.dead_letters)

    async def depth(self, queue: str) -> int:
        """Ready messages in an existing queue."""
        declared = await self.probe.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0

    async def take(self, queue: str, expected: int, seconds: float = 10.0) -> list[AbstractIncomingMessage]:
        """Consume (and ack) up to `expected` messages from a queue, waiting up to `seconds` for them."""
        found: list[AbstractIncomingMessage] = []
        source = await self.channel.get_queue(queue, ensure=False)
        deadline = time.monotonic() + seconds
        while len(found) < expected and time.monotonic() < deadline:
            message = await source.get(no_ack=False, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            found.append(message)
        return found


@contextlib.asynccontextmanager
async def rabbit(amqp_url: str, namespace: str) -> AsyncIterator[Rabbit]:
    """Declare the services' queues under `namespace` and open a publisher."""
    connection = await connect(amqp_url, "admin-tests")
    # A robust channel answers a passive declare of a queue it declared from its cache: probe on a plain one.
    plain = await aio_pika.connect(amqp_url)
    topology = Topology(namespace)
    channel = await connection.channel()
    for service, keys in SERVICE_KEYS.items():
        await topology.declare_service(channel, service, keys, TEST_RETRY)
    publisher = await Publisher.open(connection, topology)
    try:
        yield Rabbit(connection, channel, await plain.channel(), publisher, topology)
    finally:
        await publisher.close()
        await plain.close()
        await connection.close()


def step_requested(
    op: str = "resize", job_id: uuid.UUID | None = None, tenant_id: uuid.UUID | None = None
) -> StepRequested:
    """A command for the first step of a one-step pipeline."""
    spec = {"op": "resize", "params": {"width": 8}} if op == "resize" else {"op": op}
    [(step, rest)] = first_steps(plan(Pipeline.model_validate([spec])))
    return StepRequested(
        job_id=job_id or uuid.uuid4(),
        tenant_id=tenant_id or uuid.uuid4(),
        correlation_id="admin-test",
        producer="test",
        service="ingest" if op == "resize" else "detect",
        input=ObjectRef(key="originals/x", content_type="image/jpeg", bytes=1, sha256="0" * 64),
        step=step,
        remaining=rest,
    )


def source_requested(lane: str = "interactive") -> SourceRequested:
    """A fetch command for ingest."""
    pipeline = Pipeline.model_validate([{"op": "resize", "params": {"width": 8}}])
    return SourceRequested.model_validate(
        {
            "job_id": uuid.uuid4(),
            "tenant_id": uuid.uuid4(),
            "correlation_id": "admin-test",
            "producer": "test",
            "url": "https://images.example/a.jpg",
            "pipeline": pipeline,
            "remaining": plan(pipeline),
            "lane": lane,
        }
    )


def step_started() -> StepStarted:
    """A notification the aggregator consumes."""
    return StepStarted(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="admin-test",
        producer="test",
        step_id="0",
        op="resize",
    )


async def refuse(event: Event) -> Sequence[Event]:
    """A handler that can never succeed."""
    raise PermanentError("this can never work")


async def dead_letter_for_real(broker: Rabbit, service: str, event: Event, *, publish: bool = True) -> None:
    """Let the platform consumer itself give up on `event`, so the headers are the ones production writes."""
    consumer = Consumer(
        connection=broker.connection,
        publisher=broker.publisher,
        topology=broker.topology,
        service=service,
        routing_keys=SERVICE_KEYS[service],
        handlers={event.type: refuse},
        retry=TEST_RETRY,
        prefetch=1,
    )
    dead_letter_queue = broker.topology.dead_letter_queue(service)
    before = await broker.depth(dead_letter_queue)
    await consumer.start()
    if publish:
        await broker.publisher.publish(event)
    await eventually(lambda: broker.depth(dead_letter_queue), lambda depth: depth > before)
    await consumer.stop(5)


async def listing(api, key: str, **params: object) -> dict:
    """The dead-letter listing, by service."""
    response = await api.client.get("/v1/admin/dead-letters", params=params, headers=as_admin(key))
    assert response.status_code == 200, response.text
    return {queue["service"]: queue for queue in response.json()["queues"]}


async def listed_ids(api, key: str, service: str) -> list[str]:
    """Message ids listed in one service's dead-letter queue, in queue order."""
    return [message["message_id"] for message in (await listing(api, key, service=service))[service]["messages"]]


async def dead_letter_events(broker: Rabbit, service: str, events: Sequence[Event]) -> list[str]:
    """Dead-letter events as the consumer would after retries; returns their message ids."""
    for event in events:
        routing_key, _ = encode_event(event)
        await broker.dead_letter(
            service,
            event.model_dump_json().encode(),
            message_id=str(event.event_id),
            reason="gave up after 3 attempts: OSError: disk full",
            routing_key=routing_key,
            message_type=event.type,
        )
    return [str(event.event_id) for event in events]
