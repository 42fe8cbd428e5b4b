"""Typed views of the API's answers; unknown fields are ignored, so newer servers do not break older clients."""

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class JobState(StrEnum):
    """Where a job (or a batch) is."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once nothing more will happen without a retry."""
        return self not in (JobState.ACCEPTED, JobState.RUNNING)


class StepState(StrEnum):
    """Where one step of a job is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Model(BaseModel):
    """Base of every answer model: frozen, and tolerant of fields it does not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class StepError(Model):
    """Why a step or a job failed."""

    code: str
    message: str


class Step(Model):
    """One step of a job."""

    id: str
    op: str
    params: dict[str, Any] = Field(default_factory=dict)
    state: StepState
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: StepError | None = None
    result: dict[str, Any] | None = None


class Output(Model):
    """One stored result of a job."""

    id: UUID
    step: str
    op: str
    name: str
    content_type: str
    width: int | None = None
    height: int | None = None
    bytes: int
    sha256: str
    url: str


class Input(Model):
    """The stored original."""

    content_type: str
    bytes: int
    sha256: str
    width: int | None = None
    height: int | None = None


class Job(Model):
    """A job with its steps, outputs and extracted metadata."""

    job_id: UUID
    state: JobState
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pipeline: list[Any]
    source_url: str | None = None
    input: Input | None = None
    error: StepError | None = None
    batch_id: UUID | None = None
    steps: list[Step] = Field(default_factory=list)
    outputs: list[Output] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        """From acceptance to the end, once the job has ended."""
        return (self.finished_at - self.created_at).total_seconds() if self.finished_at else None


class JobAccepted(Model):
    """The answer to a submission."""

    job_id: UUID
    state: JobState
    status_url: str
    events_url: str


class JobControlled(Model):
    """The answer to a cancel or a retry of a job."""

    job_id: UUID
    state: JobState
    changed: bool
    status_url: str


class JobStateChange(Model):
    """A job stream's 'job' event: the job moved to another state."""

    job_id: UUID
    state: JobState
    finished_at: datetime | None = None


class BatchTotals(Model):
    """How many of a batch's jobs are in each state."""

    queued: int
    running: int
    succeeded: int
    partially_failed: int
    failed: int
    cancelled: int
    total: int


class BatchProgress(Model):
    """Finished jobs over all jobs."""

    finished: int
    total: int
    fraction: float


class BatchOutput(Model):
    """One result of a batch item."""

    step: str
    name: str
    content_type: str
    url: str


class BatchItem(Model):
    """One item of a batch and its job."""

    position: int
    id: str | None = None
    url: str | None = None
    filename: str | None = None
    job_id: UUID
    state: JobState
    error: StepError | None = None
    outputs: list[BatchOutput] = Field(default_factory=list)


class Batch(Model):
    """A batch with its totals and its items (every page, when read through `wait_batch`)."""

    batch_id: UUID
    state: JobState
    source: str
    created_at: datetime
    finished_at: datetime | None = None
    pipeline: list[Any]
    totals: BatchTotals
    progress: BatchProgress
    duplicates: list[dict[str, Any]] = Field(default_factory=list)
    items: list[BatchItem] = Field(default_factory=list)
    offset: int = 0
    limit: int = 0
    next_offset: int | None = None


class BatchAccepted(Model):
    """The answer to a batch submission."""

    batch_id: UUID
    state: JobState
    items: int
    jobs: int
    duplicates: list[dict[str, Any]] = Field(default_factory=list)
    status_url: str
    events_url: str


class BatchProgressChange(Model):
    """A batch stream's 'progress' or final 'batch' event."""

    batch_id: UUID
    state: JobState
    totals: BatchTotals
    progress: BatchProgress
    finished_at: datetime | None = None


class Operation(Model):
    """One operation a pipeline step can name, with the JSON Schema of its parameters."""

    op: str
    service: str
    description: str
    produces_image: bool = True
    params_schema: dict[str, Any] = Field(default_factory=dict)


class WebhookSecret(Model):
    """The tenant's webhook signing secret, and until when the previous one still signs after a rotation."""

    secret: str
    previous_valid_until: datetime | None = None


class Problem(Model):
    """An RFC 9457 problem document, as the API sends with every refusal."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = "about:blank"
    title: str = ""
    status: int | None = None
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None
