"""Versioned events: the envelope every message carries and the event types."""

from datetime import UTC, datetime
from typing import ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import Field, JsonValue

from pixtools_contracts._base import Contract
from pixtools_contracts._operations import ServiceName
from pixtools_contracts._pipeline import Pipeline, PlannedStep, SlipNode
from pixtools_contracts._states import CompletedJobState


def _now() -> datetime:
    return datetime.now(UTC)


class Event(Contract):
    """The envelope: identity, time, job and tenant, correlation, trace context and producer."""

    type: str = Field(description="Type tag with version, for example 'job.completed.v1'.")
    event_id: UUID = Field(default_factory=uuid4, description="Unique id; consumers dedupe on it.")
    occurred_at: datetime = Field(default_factory=_now, description="When the event happened (UTC).")
    job_id: UUID = Field(description="The job this event belongs to.")
    tenant_id: UUID = Field(description="The tenant that owns the job.")
    correlation_id: str = Field(description="Id shared by every event of one request, for logs.")
    traceparent: str | None = Field(default=None, description="W3C trace context 'traceparent' header.")
    tracestate: str | None = Field(default=None, description="W3C trace context 'tracestate' header.")
    producer: str = Field(description="Service that produced the event, for example 'ingest'.")

    fanout: ClassVar[bool] = True

    def routing_key(self) -> str:
        """The topic routing key, derived from the type."""
        return self.type


class ObjectRef(Contract):
    """A stored object and what is known about it."""

    key: str = Field(description="Blob store key.")
    content_type: str = Field(description="MIME type, for example 'image/webp'.")
    bytes: int = Field(ge=0, description="Size in bytes.")
    sha256: str = Field(description="Hex SHA-256 of the content.")
    width: int | None = Field(default=None, description="Pixel width, for images.")
    height: int | None = Field(default=None, description="Pixel height, for images.")


class StepOutput(ObjectRef):
    """An object a step stored."""

    name: str = Field(description="Short name of the output within the step, for example 'image' or 'metadata'.")
    role: Literal["image", "artifact"] = Field(
        description="'image' is the step's result image; 'artifact' is a side result such as JSON or an overlay."
    )

    def ref(self) -> ObjectRef:
        """The stored object alone, as a later step's input."""
        return ObjectRef.model_validate(self.model_dump(include=set(ObjectRef.model_fields)))


class ErrorInfo(Contract):
    """Why a step failed."""

    code: str = Field(description="Stable error class, for example 'image.corrupt' or 'retries_exhausted'.")
    message: str = Field(description="Human-readable reason.")


class JobSubmitted(Event):
    """A job was accepted: its input is stored and its pipeline validated (for a URL job: once it is fetched)."""

    type: Literal["job.submitted.v1"] = "job.submitted.v1"
    input: ObjectRef = Field(description="The stored original.")
    pipeline: Pipeline = Field(description="The pipeline as submitted.")
    step_count: int = Field(description="Steps in the job tree.")
    leaf_count: int = Field(description="Leaves (outputs) in the job tree.")


Lane = Literal["interactive", "bulk"]
"""Which queue of a service a command waits in: single jobs are interactive, batch items bulk."""


def _lane_suffix(lane: Lane) -> str:
    return ".bulk" if lane == "bulk" else ""


class StepRequested(Event):
    """A command to a service: run this step on this input, then continue the slip."""

    type: Literal["step.requested.v1"] = "step.requested.v1"
    service: ServiceName = Field(description="Service that runs the step.")
    input: ObjectRef = Field(description="The image the step reads.")
    step: PlannedStep = Field(description="The step to run.")
    remaining: list[SlipNode] = Field(description="The rest of the routing slip after this step.")
    lane: Lane = Field(
        default="interactive",
        description="'bulk' for batch items: they wait in the service's bulk queue, so single jobs are not starved.",
    )

    fanout: ClassVar[bool] = False

    def routing_key(self) -> str:
        """Commands route to the owning service: 'step.requested.v1.<service>', plus '.bulk' in the bulk lane."""
        return f"{self.type}.{self.service}{_lane_suffix(self.lane)}"


class SourceRequested(Event):
    """A command to ingest: fetch the job's original from a URL, store it, then start the slip."""

    type: Literal["source.requested.v1"] = "source.requested.v1"
    url: str = Field(description="The http or https URL to fetch.")
    pipeline: Pipeline = Field(description="The pipeline as submitted, announced in job.submitted.v1 once fetched.")
    remaining: list[SlipNode] = Field(description="The job's whole routing slip, started once the source is stored.")
    lane: Lane = Field(default="interactive", description="Queue lane, as for step requests.")

    fanout: ClassVar[bool] = False

    def routing_key(self) -> str:
        """Routes to ingest: 'source.requested.v1.ingest', plus '.bulk' in the bulk lane."""
        return f"{self.type}.ingest{_lane_suffix(self.lane)}"


class SourceFetched(Event):
    """A job's original was fetched from its URL and stored; its first steps were requested."""

    type: Literal["source.fetched.v1"] = "source.fetched.v1"
    url: str = Field(description="The URL that was fetched.")
    final_url: str = Field(description="The URL that answered, after redirects.")
    input: ObjectRef = Field(description="The stored original.")
    attempts: int = Field(ge=1, description="Fetch attempts it took.")


class SourceFailed(Event):
    """A job's original could not be fetched; the job fails without running any step."""

    type: Literal["source.failed.v1"] = "source.failed.v1"
    url: str = Field(description="The URL that was tried.")
    error: ErrorInfo = Field(
        description="The reason, for example 'fetch.blocked', 'fetch.http_4xx' or 'fetch.not_an_image'."
    )
    attempts: int = Field(ge=1, description="Fetch attempts made.")


class StepStarted(Event):
    """A service began a step."""

    type: Literal["step.started.v1"] = "step.started.v1"
    step_id: str = Field(description="Step id in the job tree.")
    op: str = Field(description="Operation name.")


class StepCompleted(Event):
    """A step finished and its outputs are stored."""

    type: Literal["step.completed.v1"] = "step.completed.v1"
    step_id: str = Field(description="Step id in the job tree.")
    op: str = Field(description="Operation name.")
    started_at: datetime = Field(description="When the step started.")
    finished_at: datetime = Field(description="When the step finished.")
    image: ObjectRef = Field(
        description="The image the next steps read (the input itself when the op passes it through)."
    )
    outputs: list[StepOutput] = Field(default_factory=list, description="Objects this step stored.")
    result: dict[str, JsonValue] | None = Field(
        default=None, description="Structured result, for example extracted metadata or detections."
    )
    next_step_ids: list[str] = Field(default_factory=list, description="Steps requested after this one.")


class StepFailed(Event):
    """A step failed; downstream steps of its branch will not run."""

    type: Literal["step.failed.v1"] = "step.failed.v1"
    step_id: str = Field(description="Step id in the job tree.")
    op: str = Field(description="Operation name.")
    started_at: datetime | None = Field(default=None, description="When the step started, if it did.")
    finished_at: datetime = Field(default_factory=_now, description="When the failure was recorded.")
    error: ErrorInfo = Field(description="The reason.")


class JobOutput(Contract):
    """One result of a finished job."""

    step_id: str = Field(description="Step that produced it.")
    op: str = Field(description="Operation of that step.")
    name: str = Field(description="Output name within the step.")
    key: str = Field(description="Blob store key.")
    content_type: str = Field(description="MIME type.")
    bytes: int = Field(description="Size in bytes.")
    sha256: str = Field(description="Hex SHA-256.")
    width: int | None = Field(default=None, description="Pixel width, for images.")
    height: int | None = Field(default=None, description="Pixel height, for images.")
    output_id: UUID | None = Field(
        default=None, description="The output's id at the gateway; with job_id it names the download path."
    )
    download_path: str | None = Field(
        default=None,
        description=(
            "Gateway path that streams the output to a caller of the owning tenant, relative to the gateway's "
            "base URL: '/v1/jobs/{job_id}/outputs/{output_id}'."
        ),
    )
    url: str | None = Field(
        default=None,
        description=(
            "A signed link that fetches the output without credentials until url_expires_at; set only when the "
            "deployment's blob store can sign links (S3), absent with the local store."
        ),
    )
    url_expires_at: datetime | None = Field(default=None, description="When the signed url stops working (UTC).")


class StepError(Contract):
    """A failed step of a job."""

    step_id: str = Field(description="Step id.")
    op: str = Field(description="Operation.")
    error: ErrorInfo = Field(description="The reason.")


class JobCompleted(Event):
    """A job reached a terminal state with at least one output: succeeded or partially failed."""

    type: Literal["job.completed.v1"] = "job.completed.v1"
    state: CompletedJobState = Field(description="Terminal state.")
    outputs: list[JobOutput] = Field(description="The outputs that were produced.")
    results: dict[str, dict[str, JsonValue]] = Field(
        default_factory=dict, description="Structured results keyed by step id (metadata, detections)."
    )
    errors: list[StepError] = Field(default_factory=list, description="Failed steps, when partially failed.")
    submitted_at: datetime = Field(description="When the job was accepted.")


class JobFailed(Event):
    """A job reached a terminal state with no output."""

    type: Literal["job.failed.v1"] = "job.failed.v1"
    errors: list[StepError] = Field(description="Failed steps and their reasons.")
    submitted_at: datetime = Field(description="When the job was accepted.")


class DetectedObject(Contract):
    """One detected object."""

    xyxy: tuple[float, float, float, float] = Field(
        description="Box corners x1, y1, x2, y2 in original image pixels (x2, y2 exclusive edges)."
    )
    score: float = Field(ge=0.0, le=1.0, description="Objectness x class score.")
    class_id: int = Field(ge=0, description="Index in the model's class list.")
    class_name: str = Field(description="Class name, for example 'person'.")


class ObjectsDetected(Event):
    """A detect step found objects (or none) in an image: for teams that consume detections."""

    type: Literal["objects.detected.v1"] = "objects.detected.v1"
    step_id: str = Field(description="Detect step id in the job tree.")
    image: ObjectRef = Field(description="The image that was analysed.")
    model_id: str = Field(description="Detector model name, for example 'yolox_nano'.")
    model_sha256: str = Field(description="Hex SHA-256 of the model file.")
    detections: list[DetectedObject] = Field(description="Detections, best score first.")
    counts: dict[str, int] = Field(description="Detections per class name.")
    overlay: ObjectRef | None = Field(default=None, description="Annotated overlay image, when requested.")


class JobCancelled(Event):
    """A job was cancelled by its owner; late results are ignored."""

    type: Literal["job.cancelled.v1"] = "job.cancelled.v1"
    reason: str = Field(default="cancelled by client", description="Why.")
