"""Request and response models of the admin API: dead letters and statistics."""

from datetime import datetime
from typing import Literal, Self, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

ConsumerQueue = Literal["ingest", "ingest.bulk", "denoise", "denoise.bulk", "detect", "detect.bulk", "aggregator"]
"""Every consuming queue by its service or lane name: each stage has a bulk lane beside its interactive queue."""

CONSUMER_QUEUES: tuple[ConsumerQueue, ...] = get_args(ConsumerQueue)

QueueRole = Literal["work", "dead_letter"]


class DeadLetterView(BaseModel):
    """One message waiting in a dead-letter queue."""

    message_id: str | None = Field(description="The message id (the event id); what replay and discard select by.")
    service: ConsumerQueue = Field(description="The service or lane whose queue gave up on the message.")
    queue: str = Field(description="The dead-letter queue holding it.")
    dead_lettered_by: Literal["consumer", "broker"] = Field(
        description="'consumer' when the service gave up with a reason; 'broker' when RabbitMQ dead-lettered it."
    )
    reason: str | None = Field(description="Why it was dead-lettered.")
    event_type: str | None = Field(description="The event type, when known.")
    job_id: UUID | None = Field(description="The job it belongs to, when the body names one.")
    step_id: str | None = Field(description="The step it asked for, for step commands.")
    death_count: int = Field(description="Times it was dead-lettered, replays included.")
    attempts: int | None = Field(description="Handling attempts of its last life (the x-attempt header).")
    first_death_at: datetime | None = Field(description="When it was first dead-lettered.")
    original_routing_key: str | None = Field(description="The routing key it was first published with.")


class DeadLetterQueueView(BaseModel):
    """A dead-letter queue: how many messages wait in it and the first of them."""

    service: ConsumerQueue = Field(description="The service or lane the queue belongs to.")
    queue: str = Field(description="Queue name.")
    count: int = Field(description="Messages in the queue when it was read; may exceed those listed.")
    messages: list[DeadLetterView] = Field(description="The first messages, at most `limit`, oldest first.")


class DeadLetterList(BaseModel):
    """Dead letters per service queue."""

    queues: list[DeadLetterQueueView] = Field(description="One entry per dead-letter queue read.")
    total: int = Field(description="Messages in all those queues.")


class DeadLetterSelection(BaseModel):
    """Which dead letters to replay or discard: one by message id, or all (of one service, or everywhere)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"service": "ingest", "all": True}]})

    service: ConsumerQueue | None = Field(default=None, description="Only this service's dead-letter queue.")
    message_id: str | None = Field(default=None, min_length=1, max_length=200, description="The one message.")
    all: bool = Field(default=False, description="Every dead letter of `service`, or of every queue without it.")

    @model_validator(mode="after")
    def _one_or_all(self) -> Self:
        if (self.message_id is None) == (not self.all):
            raise ValueError("give either message_id or all=true")
        return self


class ReplayResult(BaseModel):
    """What a replay did."""

    replayed: int = Field(description="Messages republished to their work queue and removed from the dead letters.")
    skipped: int = Field(description="Step commands left in place because their job is gone or cancelled.")


class DiscardResult(BaseModel):
    """What a discard did."""

    discarded: int = Field(description="Messages removed from the dead letters.")


class QueueStatsView(BaseModel):
    """One queue's depth and consumers."""

    name: str = Field(description="Queue name.")
    service: ConsumerQueue = Field(description="The service or lane it belongs to.")
    role: QueueRole = Field(description="Its service's work queue or its dead-letter queue.")
    exists: bool = Field(description="False until the consuming service first starts and declares it.")
    ready: int | None = Field(description="Messages waiting to be delivered.")
    unacked: int | None = Field(description="Messages delivered and not yet settled; null from the AMQP source.")
    consumers: int | None = Field(description="Consumers attached.")


class StageStatsView(BaseModel):
    """One operation's finished steps over the window."""

    op: str = Field(description="Operation.")
    service: str = Field(description="Service that runs it.")
    completed: int = Field(description="Steps that succeeded.")
    failed: int = Field(description="Steps that failed.")
    throughput_per_minute: float = Field(description="Steps finished (succeeded or failed) per minute.")
    p50_ms: float | None = Field(description="Median duration of succeeded steps, in milliseconds.")
    p95_ms: float | None = Field(description="95th percentile duration of succeeded steps, in milliseconds.")


class OutboxStatsView(BaseModel):
    """Events committed but not yet published; a command no queue takes stays here."""

    unpublished: int = Field(description="Rows waiting to be published.")
    oldest_age_s: float | None = Field(description="Age of the oldest waiting row, in seconds.")
    oldest_routing_key: str | None = Field(description="Routing key of the oldest waiting row.")
    oldest_error: str | None = Field(description="The last publish error of the oldest waiting row.")


class StatsView(BaseModel):
    """Queues, stages, jobs and the outbox, at one moment."""

    generated_at: datetime = Field(description="When these figures were read.")
    window_minutes: int = Field(description="The window the stage figures cover.")
    queue_source: Literal["management", "amqp"] = Field(
        description="Where the queue figures come from: the RabbitMQ management API, or AMQP passive declares."
    )
    queue_source_error: str | None = Field(
        description="Why the management API was not used although it is configured, when it failed."
    )
    queues: list[QueueStatsView] = Field(description="Every work queue, bulk lane and dead-letter queue.")
    stages: list[StageStatsView] = Field(description="One entry per operation.")
    jobs: dict[str, int] = Field(description="Jobs by state.")
    outbox: OutboxStatsView = Field(description="The outbox backlog.")
