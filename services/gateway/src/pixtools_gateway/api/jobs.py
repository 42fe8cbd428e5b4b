"""Jobs: submit, read, list, stream progress and download outputs."""

import functools
import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from sse_starlette import EventSourceResponse

from pixtools_contracts import JobState
from pixtools_gateway.adapters.uploads import limited_receive, probe_upload, read_json_object
from pixtools_gateway.api.deps import (
    IdempotencyKey,
    JobsWriter,
    LastEventId,
    Resources,
    Session,
    Shared,
    TenantId,
    idempotency_key,
)
from pixtools_gateway.api.limits import AppLimits, ReadLimited, SubmittingTenant, held
from pixtools_gateway.api.progress import PING_S, keepalive
from pixtools_gateway.api.progress import job_events as job_progress
from pixtools_gateway.api.waiting import terminal_view
from pixtools_gateway.body_validation import form_fields, request_body, validated
from pixtools_gateway.errors import NotFound, UnsupportedMedia, UploadTooLarge
from pixtools_gateway.handlers.control import Controlled, cancel_job, retry_job
from pixtools_gateway.handlers.job_query import fetch_job
from pixtools_gateway.handlers.reads import get_output, list_jobs, read_job_view
from pixtools_gateway.handlers.submit import Submission, Upload, submit_job
from pixtools_gateway.limiting import Limiting
from pixtools_gateway.openapi import download, event_stream, header_parameters, problems
from pixtools_gateway.pipelines import parse_pipeline
from pixtools_gateway.prefer import requested_wait
from pixtools_gateway.request_bodies import MAX_FORM_FIELDS, JobFromUrl, JobUpload
from pixtools_gateway.responses import JobAccepted, JobControlled, JobPage, JobStateEvent, JobView, StepView
from pixtools_gateway.settings import GatewaySettings
from pixtools_gateway.webhook_targets import check_webhook_url
from pixtools_platform.blobstore import BlobNotFound
from pixtools_platform.logs import log_context
from pixtools_platform.telemetry import current_trace_context

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
# Every media type an output is stored under: the image formats (a step may keep its input's), and JSON artifacts.
OUTPUT_MEDIA_TYPES = [
    *(f"image/{kind}" for kind in ("jpeg", "png", "webp", "avif", "gif", "tiff", "bmp")),
    "application/json",
]
log = logging.getLogger(__name__)

PreferWait = Annotated[
    str | None,
    Header(
        alias="Prefer",
        description="RFC 7240 preferences; `wait=N` asks for the finished job within N seconds (capped by the "
        "service) instead of a 202. Other preferences, and malformed values, are ignored.",
        examples=["wait=30"],
    ),
]


def _submission_headers(idempotency_key: IdempotencyKey = None, prefer: PreferWait = None) -> None:
    """The submit route's headers, for the OpenAPI document; the route reads them itself."""


_FORM_ALLOWANCE = 256 * 1024  # multipart framing and the small text fields around the file
_JSON_BODY_LIMIT = 256 * 1024


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    summary="Submit an image, or an image URL, and a pipeline",
    openapi_extra={**request_body(multipart=JobUpload, json=JobFromUrl), **header_parameters(_submission_headers)},
    responses={
        200: {
            "model": JobView,
            "description": "With `Prefer: wait=N`: the job became terminal within N seconds; the body is the job "
            "as `GET /v1/jobs/{job_id}` answers it.",
            "headers": {
                "Preference-Applied": {
                    "description": "`wait=N`: the preference was honoured, waiting N seconds at most.",
                    "schema": {"type": "string"},
                }
            },
        },
        **problems(409, 413, 415, 422, 429),
    },
)
async def submit(request: Request, tenant_id: SubmittingTenant) -> Response:
    """Accept a job: 202 only once the job and its outbox rows are committed.

    With `Prefer: wait=N` (RFC 7240) the answer waits up to N seconds (at most a configured cap) for the job to
    finish: 200 with the whole job if it did, else the usual 202. Other preferences and malformed values are
    ignored.
    """
    # Read here rather than as header parameters (documented by `_submission_headers`), and taken from the app's state
    # rather than as dependencies: FastAPI solves and validates each of those anew on every request.
    key = idempotency_key(request)
    shared: Resources = request.app.state.resources
    limits: Limiting = request.app.state.limiting
    content_type = request.headers.get("content-type", "")
    upload: Upload | None = None
    body: JobUpload | JobFromUrl
    if content_type.startswith("multipart/form-data"):
        upload, body = await _read_upload(request, shared.settings)
    elif content_type.startswith("application/json"):
        body = validated(JobFromUrl, await read_json_object(request, _JSON_BODY_LIMIT))
    else:
        raise UnsupportedMedia(
            "send multipart/form-data with 'file' and 'pipeline', or JSON with 'source_url' and 'pipeline'"
        )
    source_url = body.source_url if isinstance(body, JobFromUrl) else None
    pipeline = parse_pipeline(body.pipeline)
    if body.webhook_url:
        await check_webhook_url(body.webhook_url, shared.settings.webhook_allow_cidrs)
    submitted = await submit_job(
        shared.sessions,
        shared.blobs,
        Submission(
            tenant_id=tenant_id,
            upload=upload,
            source_url=source_url,
            pipeline=pipeline,
            webhook_url=body.webhook_url or None,
            idempotency_key=key,
            correlation_id=request.headers.get("x-correlation-id") or str(uuid.uuid4()),
            traceparent=current_trace_context().get("traceparent"),
        ),
        writer=shared.reader,
        admit=functools.partial(limits.admit_jobs, tenant_id, 1),
    )
    job = submitted.job
    if submitted.created:
        limits.jobs_added(tenant_id, 1)
    if log.isEnabledFor(logging.INFO):  # the context costs more than the record, and services often log at WARNING
        with log_context(job_id=str(job.id), correlation_id=job.correlation_id):
            message = "job accepted" if submitted.created else "job replayed for an idempotency key"
            log.info(message, extra={"steps": job.step_count, "source": "url" if source_url else "upload"})
    status_url = job_url(request, job.id)
    accepted = JobAccepted(job_id=job.id, state=job.state, status_url=status_url, events_url=status_url + "/events")
    headers = {"Location": accepted.status_url, "Vary": "Prefer"}
    # A request may send several Prefer headers, so all are read.
    wait_s = requested_wait(request.headers.getlist("prefer"), shared.settings.prefer_wait_max_s)
    if wait_s:
        output_url = functools.partial(shared.output_url, str(request.base_url).rstrip("/"))
        view = await terminal_view(shared, tenant_id=tenant_id, job_id=job.id, seconds=wait_s, output_url=output_url)
        if view is not None:
            finished = {
                "Content-Location": accepted.status_url,
                "Vary": "Prefer",
                "Preference-Applied": f"wait={wait_s}",
            }
            return Response(view.model_dump_json(), media_type="application/json", headers=finished)
    return Response(accepted.model_dump_json(), status_code=202, media_type="application/json", headers=headers)


async def _read_upload(request: Request, settings: GatewaySettings) -> tuple[Upload, JobUpload]:
    """The probed image and the fields of a multipart submission, read under the upload cap."""
    limited = Request(request.scope, limited_receive(request.receive, settings.max_upload_bytes + _FORM_ALLOWANCE))
    async with limited.form(max_files=1, max_fields=MAX_FORM_FIELDS) as form:
        body = validated(JobUpload, form_fields(form, JobUpload))
        data = await body.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise UploadTooLarge(f"the file exceeds {settings.max_upload_bytes} bytes")
    return probe_upload(data, max_pixels=settings.max_pixels), body


@router.get(
    "/{job_id}",
    response_model=JobView,
    summary="Read a job",
    name="read_job",
    responses=problems(404, 429),
    dependencies=[ReadLimited],
)
async def read_job(job_id: uuid.UUID, request: Request, tenant_id: TenantId, shared: Shared) -> Response:
    """The job's state, steps, outputs with download URLs, and extracted metadata."""

    output_url = functools.partial(shared.output_url, str(request.base_url).rstrip("/"))

    # Closed by hand: `async with` closes through a task of its own (SQLAlchemy's guard against a cancelled close),
    # one more turn of the event loop to wait through behind other tenants' work. An autocommit read has nothing to
    # roll back, so its close returns the connection to the pool without awaiting anything.
    connection = await shared.reader.connect()
    try:
        view = await read_job_view(connection, tenant_id=tenant_id, job_id=job_id, output_url=output_url)
    finally:
        await connection.close()
    # Serialised once here; returning the model would make FastAPI validate it a second time.
    return Response(view.model_dump_json(), media_type="application/json")


@router.get(
    "", response_model=JobPage, summary="List jobs, newest first", responses=problems(429), dependencies=[ReadLimited]
)
async def list_all(
    request: Request,
    tenant_id: TenantId,
    session: Session,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    """The tenant's jobs with keyset pagination."""
    items, next_cursor = await list_jobs(
        session,
        tenant_id=tenant_id,
        state=state,
        cursor=cursor,
        limit=limit,
        status_url=lambda job_id: job_url(request, job_id),
    )
    return JobPage(items=items, next_cursor=next_cursor)


@router.get(
    "/{job_id}/events",
    summary="Stream progress as server-sent events",
    name="job_events",
    response_class=EventSourceResponse,
    responses={
        **event_stream(
            "Every step state change ('step', a step as in the job) and job state change ('job'), "
            "until the job is terminal.",
            'event: job\nid: 1-\ndata: {"job_id": "…", "state": "running", "finished_at": null}\n\n',
            step=StepView,
            job=JobStateEvent,
        ),
        **problems(404, 429),
    },
)
async def job_events(
    job_id: uuid.UUID, tenant_id: TenantId, shared: Shared, limits: AppLimits, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """Live step and job state changes; the stream ends when the job is terminal."""
    # A short-lived connection: a request-scoped session would stay checked out for the whole stream.
    async with shared.reader.connect() as connection:
        if await fetch_job(connection, tenant_id, job_id) is None:
            raise NotFound(f"no job {job_id}")
    slot = await limits.claim_stream(tenant_id)
    events = held(limits, tenant_id, slot, job_progress(shared, tenant_id, job_id, last_event_id))
    return EventSourceResponse(events, ping=PING_S, ping_message_factory=keepalive)


@router.get(
    "/{job_id}/outputs/{output_id}",
    summary="Download an output",
    name="download_output",
    response_class=Response,
    responses={**download("The output's bytes, in its `content_type`.", OUTPUT_MEDIA_TYPES), **problems(404, 429)},
    dependencies=[ReadLimited],
)
async def download_output(
    job_id: uuid.UUID, output_id: uuid.UUID, tenant_id: TenantId, session: Session, shared: Shared
) -> Response:
    """The output's bytes, for stores without presigned URLs."""
    output = await get_output(session, tenant_id=tenant_id, job_id=job_id, output_id=output_id)
    try:
        data = await shared.blobs.get(output.key)
    except BlobNotFound as error:
        raise NotFound("the output has expired") from error
    return Response(data, media_type=output.content_type, headers={"ETag": f'"{output.sha256}"'})


@router.delete(
    "/{job_id}",
    response_model=JobControlled,
    summary="Cancel a job",
    responses=problems(404, 409, 429),
    dependencies=[ReadLimited],
)
async def cancel(job_id: uuid.UUID, request: Request, tenant_id: JobsWriter, shared: Shared) -> JobControlled:
    """Queued steps are skipped and running steps' results discarded; cancelling again changes nothing.

    A cancelled job stays readable: `GET /v1/jobs/{job_id}` answers with state `cancelled`, the outputs made
    before the cancel, and `error` saying why, until retention removes it. A job already finished answers 409.
    """
    async with shared.sessions.begin() as session:
        done = await cancel_job(session, tenant_id=tenant_id, job_id=job_id, reason="cancelled by client")
    return _controlled(job_id, done, request, shared)


@router.post(
    "/{job_id}/retry",
    status_code=202,
    response_model=JobControlled,
    summary="Retry a job's failed steps",
    responses=problems(404, 409, 429),
    dependencies=[ReadLimited],
)
async def retry(job_id: uuid.UUID, request: Request, tenant_id: JobsWriter, shared: Shared) -> JobControlled:
    """Run only the failed steps again (or the URL fetch that failed); outputs that succeeded are kept."""
    async with shared.sessions.begin() as session:
        done = await retry_job(session, tenant_id=tenant_id, job_id=job_id)
    return _controlled(job_id, done, request, shared)


def _controlled(job_id: uuid.UUID, done: Controlled, request: Request, shared: Resources) -> JobControlled:
    with log_context(job_id=str(job_id)):
        log.info("job controlled", extra={"state": done.state, "changed": done.changed})
    return JobControlled(
        job_id=job_id,
        state=done.state,
        changed=bool(done.changed),
        status_url=job_url(request, job_id),
    )


def job_url(request: Request, job_id: uuid.UUID) -> str:
    """The job's URL, as `url_for("read_job")` builds it; formatting it skips url_for's search of every route."""
    return f"{request.base_url}{router.prefix.lstrip('/')}/{job_id}"
