"""Ports: what the state machine and the webhook dispatcher need from the database and the network."""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pixtools_contracts import Event
from pixtools_db import Batch, Job, Output, Step, WebhookDelivery


class JobRepository(Protocol):
    """Jobs, steps and outputs inside one transaction; what is staged here commits with the state."""

    async def prepare(self, events: Sequence[Event]) -> None:
        """Before a group of events is applied: claim their inbox rows, lock their jobs and load their steps at once."""
        ...

    async def claim_event(self, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when it was applied before."""
        ...

    async def lock_job(self, job_id: uuid.UUID) -> Job | None:
        """The job, locked until the transaction ends, so concurrent branches apply one at a time."""
        ...

    async def steps(self, job_id: uuid.UUID) -> list[Step]:
        """The job's steps in tree order; changes to them are saved on commit."""
        ...

    async def add_outputs(self, outputs: Sequence[Output]) -> None:
        """Store outputs, keeping the first copy of any (job, step, name) already stored."""
        ...

    async def final_outputs(self, job_id: uuid.UUID) -> list[Output]:
        """The outputs listed as the job's results, in step order."""
        ...

    def stage(self, event: Event) -> None:
        """Put an event in the outbox, to be published once the transaction commits."""
        ...

    def add_webhook(self, delivery: WebhookDelivery) -> None:
        """Queue a webhook delivery with the transaction."""
        ...

    async def notify(self, job_id: uuid.UUID) -> None:
        """Tell listeners (the gateway's event stream) the job changed, once the transaction commits."""
        ...

    async def lock_batch(self, batch_id: uuid.UUID) -> Batch | None:
        """The batch, locked until the transaction ends, so its jobs finishing at once settle it one at a time."""
        ...

    async def start_batch(self, batch_id: uuid.UUID, now: datetime) -> None:
        """Move the batch from 'accepted' to 'running'; any other state is left as it is."""
        ...

    async def has_unfinished_jobs(self, batch_id: uuid.UUID) -> bool:
        """True while any job of the batch, as committed by others or changed here, is not terminal."""
        ...

    async def count_batch_jobs(self, batch_id: uuid.UUID) -> dict[str, int]:
        """The batch's jobs counted by state."""
        ...

    async def notify_batch(self, batch_id: uuid.UUID) -> None:
        """Tell listeners (the gateway's batch stream) the batch or one of its jobs changed, once committed."""
        ...


@dataclass(frozen=True)
class EndpointState:
    """A webhook URL's health as its circuit breaker sees it."""

    consecutive_failures: int = 0
    open_until: datetime | None = None
    disabled_at: datetime | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A claimed webhook delivery, with the secrets to sign it and its endpoint's state at claim time."""

    id: uuid.UUID
    url: str
    payload: bytes
    traceparent: str | None
    attempts: int
    created_at: datetime
    secrets: tuple[str, ...]
    endpoint: EndpointState
    job_id: uuid.UUID | None = None
    """The job whose event this delivers; None for a batch's."""


EndpointEffect = Literal["success", "failure", "gone"]


@dataclass(frozen=True)
class Attempt:
    """What to record after handling one due delivery."""

    outcome: Literal["delivered", "retry", "exhausted", "gone", "blocked", "disabled", "postponed"]
    state: Literal["pending", "delivered", "failed", "disabled", "blocked"]
    counted: bool
    next_attempt_at: datetime | None = None
    status: int | None = None
    error: str | None = None
    endpoint_effect: EndpointEffect | None = None


class DeliveryStore(Protocol):
    """Webhook deliveries and endpoint health, shared safely between replicas."""

    async def claim_due(self, *, now: datetime, limit: int, lease: timedelta) -> list[DueDelivery]:
        """Take due deliveries and hide them from other replicas for `lease`."""
        ...

    async def record(self, delivery: DueDelivery, attempt: Attempt, *, now: datetime) -> EndpointState | None:
        """Save an attempt and its effect on the endpoint; return the endpoint's new state, None if untouched."""
        ...


@dataclass(frozen=True)
class SendResult:
    """How one webhook request went: a status, a transport error, or a blocked target."""

    status: int | None = None
    error: str | None = None
    blocked: bool = False


class WebhookSender(Protocol):
    """Sends one signed webhook request."""

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """POST `body` to `url` once, never following redirects."""
        ...


@dataclass(frozen=True)
class SignedLink:
    """A link that fetches a stored object without credentials, until it expires."""

    url: str
    expires_at: datetime


class OutputLinks(Protocol):
    """Signs links to outputs for the terminal events, where the blob store can."""

    async def signed_link(self, key: str) -> SignedLink | None:
        """A signed link to the object at `key`, or None when the store cannot sign one."""
        ...
