"""Response models of the HTTP API."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, JsonValue

from pixtools_contracts import BatchTotals, JobState, StepState


class JobAccepted(BaseModel):
    """The answer to a submission."""

    job_id: UUID = Field(description="The job's id.")
    state: JobState = Field(description="Current state.")
    status_url: str = Field(description="Where to poll the job.")
    events_url: str = Field(description="Server-sent events stream of the job's progress.")


class ErrorView(BaseModel):
    """Why a step failed."""

    code: str = Field(description="Stable error class.")
    message: str = Field(description="Human-readable reason.")


class StepView(BaseModel):
    """One step of a job."""

    id: str = Field(description="Step id in the job tree.")
    op: str = Field(description="Operation.")
    params: dict[str, JsonValue] = Field(description="Validated parameters, defaults filled in.")
    state: StepState = Field(description="Step state.")
    started_at: datetime | None = Field(description="When it started.")
    finished_at: datetime | None = Field(description="When it finished.")
    error: ErrorView | None = Field(description="Why it failed, if it did.")
    result: dict[str, JsonValue] | None = Field(description="Structured result (metadata, detections).")


class OutputView(BaseModel):
    """One stored result of a job."""

    id: UUID = Field(description="Output id.")
    step: str = Field(description="Step that produced it.")
    op: str = Field(description="Operation of that step.")
    name: str = Field(description="Output name within the step.")
    content_type: str = Field(description="MIME type.")
    width: int | None = Field(description="Pixel width, for images.")
    height: int | None = Field(description="Pixel height, for images.")
    bytes: int = Field(description="Size in bytes.")
    sha256: str = Field(description="Hex SHA-256.")
    url: str = Field(
        description="Download URL that needs no key and expires: presigned by S3, or signed by the gateway."
    )


class InputView(BaseModel):
    """The stored original."""

    content_type: str = Field(description="MIME type sniffed from the bytes.")
    bytes: int = Field(description="Size in bytes.")
    sha256: str = Field(description="Hex SHA-256.")
    width: int | None = Field(description="Pixel width.")
    height: int | None = Field(description="Pixel height.")


class JobView(BaseModel):
    """A job with its steps, outputs and extracted metadata."""

    job_id: UUID = Field(description="The job's id.")
    state: JobState = Field(description="Current state.")
    created_at: datetime = Field(description="When it was accepted.")
    started_at: datetime | None = Field(description="When its first step started.")
    finished_at: datetime | None = Field(description="When it reached a terminal state.")
    pipeline: list[JsonValue] = Field(description="The validated pipeline.")
    source_url: str | None = Field(default=None, description="The URL the original is fetched from, for URL jobs.")
    input: InputView | None = Field(description="The stored original; null while a URL job's source is fetched.")
    error: ErrorView | None = Field(
        default=None, description="Why the job as a whole failed or ended: a fetch failure or a cancellation."
    )
    batch_id: UUID | None = Field(default=None, description="The batch this job belongs to, if any.")
    steps: list[StepView] = Field(description="Every step of the job tree, in tree order.")
    outputs: list[OutputView] = Field(description="The job's results.")
    metadata: dict[str, JsonValue] = Field(description="Metadata extracted by metadata steps, keyed by step id.")


class JobSummary(BaseModel):
    """A job in a listing."""

    job_id: UUID = Field(description="The job's id.")
    state: JobState = Field(description="Current state.")
    created_at: datetime = Field(description="When it was accepted.")
    finished_at: datetime | None = Field(description="When it reached a terminal state.")
    status_url: str = Field(description="Where to read the whole job.")


class JobPage(BaseModel):
    """One page of jobs, newest first."""

    items: list[JobSummary] = Field(description="Jobs on this page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class WebhookSecret(BaseModel):
    """The tenant's webhook signing secret."""

    secret: str = Field(description="Standard Webhooks secret, 'whsec_' + base64.")
    previous_valid_until: datetime | None = Field(default=None, description="Until when the old secret still signs.")


class JobControlled(BaseModel):
    """The answer to a cancel or retry of a job."""

    job_id: UUID = Field(description="The job's id.")
    state: JobState = Field(description="State after the call.")
    changed: bool = Field(description="False when the call changed nothing (the job was already cancelled).")
    status_url: str = Field(description="Where to poll the job.")


BatchState = JobState


class BatchAccepted(BaseModel):
    """The answer to a batch submission."""

    batch_id: UUID = Field(description="The batch's id.")
    state: BatchState = Field(description="Current state.")
    items: int = Field(description="Items received.")
    jobs: int = Field(description="Jobs created: the items less the duplicates.")
    duplicates: list[dict[str, JsonValue]] = Field(
        description="Items dropped because an earlier item had the same URL (or file content): "
        "their index, id, url or filename, and the index they duplicate."
    )
    status_url: str = Field(description="Where to poll the batch.")
    events_url: str = Field(description="Server-sent events stream of the batch's progress.")


class BatchProgress(BaseModel):
    """How far the batch is."""

    finished: int = Field(description="Jobs in a terminal state.")
    total: int = Field(description="All jobs.")
    fraction: float = Field(description="finished / total, 0 to 1.")


class BatchOutput(BaseModel):
    """One result of a batch item."""

    step: str = Field(description="Step that produced it.")
    name: str = Field(description="Output name within the step.")
    content_type: str = Field(description="MIME type.")
    url: str = Field(
        description="Download URL that needs no key and expires: presigned by S3, or signed by the gateway."
    )


class BatchItemView(BaseModel):
    """One item of a batch and its job."""

    position: int = Field(description="Position in the batch, after duplicates were removed.")
    id: str | None = Field(description="The client's id of the item, if it gave one.")
    url: str | None = Field(description="The item's URL, for URL items.")
    filename: str | None = Field(description="The uploaded file's name, for file items.")
    job_id: UUID = Field(description="The item's job.")
    state: JobState = Field(description="The job's state.")
    error: ErrorView | None = Field(description="Why the job failed or ended, if it did.")
    outputs: list[BatchOutput] = Field(description="The job's results.")


class BatchView(BaseModel):
    """A batch with its totals and one page of items."""

    batch_id: UUID = Field(description="The batch's id.")
    state: BatchState = Field(description="Batch state, with the same terminal meaning as a job's.")
    source: Literal["urls", "csv", "files"] = Field(description="How the items were sent.")
    created_at: datetime = Field(description="When it was accepted.")
    finished_at: datetime | None = Field(description="When every job was terminal.")
    pipeline: list[JsonValue] = Field(description="The pipeline every item runs.")
    totals: BatchTotals = Field(description="Jobs by state.")
    progress: BatchProgress = Field(description="Finished jobs over all jobs.")
    duplicates: list[dict[str, JsonValue]] = Field(description="Items dropped as duplicates.")
    items: list[BatchItemView] = Field(description="This page of items, in batch order.")
    offset: int = Field(description="Offset of this page.")
    limit: int = Field(description="Page size asked for.")
    next_offset: int | None = Field(description="Offset of the next page; null on the last page.")


class BatchControlled(BaseModel):
    """The answer to a cancel or retry of a batch."""

    batch_id: UUID = Field(description="The batch's id.")
    state: BatchState = Field(description="Batch state after the call.")
    jobs_changed: int = Field(description="Jobs cancelled or retried by this call.")
    status_url: str = Field(description="Where to poll the batch.")


class JobStateEvent(BaseModel):
    """The data of a job stream's 'job' event: the job moved to another state."""

    job_id: UUID = Field(description="The job's id.")
    state: JobState = Field(description="The state it moved to.")
    finished_at: datetime | None = Field(description="When it reached a terminal state (RFC 3339, UTC).")


class BatchProgressEvent(BaseModel):
    """The data of a batch stream's 'progress' and final 'batch' events."""

    batch_id: UUID = Field(description="The batch's id.")
    state: BatchState = Field(description="Batch state.")
    totals: BatchTotals = Field(description="Jobs by state.")
    progress: BatchProgress = Field(description="Finished jobs over all jobs.")
    finished_at: datetime | None = Field(
        default=None, description="When every job was terminal (RFC 3339, UTC); only once the batch is terminal."
    )


class OperationView(BaseModel):
    """One operation a pipeline step can name."""

    op: str = Field(description="The name a step gives in `op`.", examples=["resize"])
    service: str = Field(description="The service that runs it.", examples=["ingest"])
    description: str = Field(description="What it does, in one line.")
    produces_image: bool = Field(description="Whether it passes a new image to the steps after it.")
    params_schema: dict[str, JsonValue] = Field(
        description="JSON Schema of its `params`, defaults included; a step may leave `params` out to take them all."
    )


class OperationCatalog(BaseModel):
    """Every operation a pipeline can use."""

    operations: list[OperationView] = Field(description="The registered operations, in registry order.")
