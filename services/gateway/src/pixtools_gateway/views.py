"""Response models of the HTTP API."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, JsonValue

JobState = Literal["accepted", "running", "succeeded", "partially_failed", "failed", "cancelled"]
TERMINAL_STATES = frozenset({"succeeded", "partially_failed", "failed", "cancelled"})


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
    state: Literal["pending", "running", "succeeded", "failed", "skipped"] = Field(description="Step state.")
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
    url: str = Field(description="Download URL: presigned, or a gateway path that takes the same API key.")


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
    input: InputView = Field(description="The original.")
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
