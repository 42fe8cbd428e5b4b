"""Batches: submit many URLs or files with one pipeline, follow them, cancel or retry them."""

import functools
import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from pixtools_contracts import JobState
from pixtools_gateway.api.batch_bodies import read_batch_upload, read_url_batch
from pixtools_gateway.api.deps import IdempotencyKey, JobsWriter, LastEventId, Resources, Shared, TenantId
from pixtools_gateway.api.limits import AppLimits, ReadLimited, held, remember
from pixtools_gateway.api.progress import PING_S, keepalive
from pixtools_gateway.api.progress import batch_events as batch_progress
from pixtools_gateway.body_validation import request_body
from pixtools_gateway.errors import UnsupportedMedia
from pixtools_gateway.handlers.batch_reads import fetch_batch, read_batch_view
from pixtools_gateway.handlers.batches import MAX_ITEMS, BatchRequest, BatchSource, create_batch
from pixtools_gateway.handlers.control import Controlled, cancel_batch, retry_batch
from pixtools_gateway.openapi import event_stream, problems
from pixtools_gateway.pipelines import parse_pipeline
from pixtools_gateway.request_bodies import BatchUpload, UrlBatch
from pixtools_gateway.responses import BatchAccepted, BatchControlled, BatchProgressEvent, BatchView
from pixtools_gateway.webhook_targets import check_webhook_url
from pixtools_platform.logs import log_context
from pixtools_platform.telemetry import current_trace_context

router = APIRouter(prefix="/v1/batches", tags=["batches"])
log = logging.getLogger(__name__)


@router.post(
    "",
    status_code=202,
    response_model=BatchAccepted,
    summary="Submit up to 1000 URLs (JSON or CSV) or files with one pipeline",
    openapi_extra=request_body(json=UrlBatch, multipart=BatchUpload),
    responses=problems(409, 413, 415, 422, 429),
)
async def submit_batch(
    request: Request,
    shared: Shared,
    tenant_id: JobsWriter,
    limits: AppLimits,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create the batch and all its jobs in one transaction; 413 with nothing created above 1000 items."""
    content_type = request.headers.get("content-type", "")
    source: BatchSource
    body: UrlBatch | BatchUpload
    if content_type.startswith("application/json"):
        source = "urls"
        items, body = await read_url_batch(request)
    elif content_type.startswith("multipart/form-data"):
        source, items, body = await read_batch_upload(request, shared.settings)
    else:
        raise UnsupportedMedia("send JSON with 'items' and 'pipeline', or multipart with a CSV 'file' or 'files'")
    # Each item is a job: a batch of 40 spends 40 submissions and counts 40 towards the unfinished quota.
    remember(request, await limits.spend(tenant_id, "submissions", cost=len(items)))
    pipeline = parse_pipeline(body.pipeline)
    webhook_url = body.webhook_url
    if webhook_url:
        await check_webhook_url(webhook_url, shared.settings.webhook_allow_cidrs)
    created = await create_batch(
        shared.sessions,
        shared.blobs,
        BatchRequest(
            tenant_id=tenant_id,
            source=source,
            items=items,
            pipeline=pipeline,
            webhook_url=webhook_url or None,
            idempotency_key=idempotency_key,
            correlation_id=request.headers.get("x-correlation-id") or str(uuid.uuid4()),
            traceparent=current_trace_context().get("traceparent"),
        ),
        admit=functools.partial(limits.admit_jobs, tenant_id, len(items)),
    )
    batch = created.batch
    if created.created:
        limits.jobs_added(tenant_id, batch.item_count)
    with log_context(batch_id=str(batch.id), correlation_id=batch.correlation_id):
        log.info(
            "batch accepted" if created.created else "batch replayed for an idempotency key",
            extra={"jobs": batch.item_count, "duplicates": len(batch.duplicates), "source": batch.source},
        )
    accepted = BatchAccepted(
        batch_id=batch.id,
        state=JobState.ACCEPTED if created.created else batch.state,
        items=batch.item_count + len(batch.duplicates),
        jobs=batch.item_count,
        duplicates=batch.duplicates,
        status_url=str(request.url_for("read_batch", batch_id=batch.id)),
        events_url=str(request.url_for("batch_events", batch_id=batch.id)),
    )
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202, headers={"Location": accepted.status_url})


@router.get(
    "/{batch_id}",
    response_model=BatchView,
    summary="Read a batch, its totals and a page of items",
    name="read_batch",
    responses=problems(404, 429),
    dependencies=[ReadLimited],
)
async def read_batch(
    batch_id: uuid.UUID,
    request: Request,
    tenant_id: TenantId,
    shared: Shared,
    offset: Annotated[int, Query(ge=0, le=MAX_ITEMS)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Totals by state and progress are computed in SQL; `items` is one page in batch order."""
    output_url = functools.partial(shared.output_url, str(request.base_url).rstrip("/"))

    async with shared.reader.connect() as connection:
        view = await read_batch_view(
            connection, tenant_id=tenant_id, batch_id=batch_id, offset=offset, limit=limit, output_url=output_url
        )
    return Response(view.model_dump_json(), media_type="application/json")


@router.get(
    "/{batch_id}/events",
    summary="Stream a batch's progress as server-sent events",
    name="batch_events",
    response_class=EventSourceResponse,
    responses={
        **event_stream(
            "A 'progress' event whenever the totals change, and a final 'batch' event when the batch is terminal.",
            'event: progress\nid: p3f2a…\ndata: {"batch_id": "…", "state": "running", "totals": {…}}\n\n',
            progress=BatchProgressEvent,
            batch=BatchProgressEvent,
        ),
        **problems(404, 429),
    },
)
async def batch_events(
    batch_id: uuid.UUID, tenant_id: TenantId, shared: Shared, limits: AppLimits, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """A 'progress' event whenever the totals change, and a final 'batch' event when the batch is terminal."""
    async with shared.reader.connect() as connection:
        await fetch_batch(connection, tenant_id, batch_id)
    slot = await limits.claim_stream(tenant_id)
    events = held(limits, tenant_id, slot, batch_progress(shared, tenant_id, batch_id, last_event_id))
    return EventSourceResponse(events, ping=PING_S, ping_message_factory=keepalive)


@router.delete(
    "/{batch_id}",
    response_model=BatchControlled,
    summary="Cancel a batch",
    responses=problems(404, 429),
    dependencies=[ReadLimited],
)
async def cancel(batch_id: uuid.UUID, request: Request, tenant_id: JobsWriter, shared: Shared) -> BatchControlled:
    """Cancel every queued or running job of the batch; repeating the call is harmless."""
    async with shared.sessions.begin() as session:
        done = await cancel_batch(session, tenant_id=tenant_id, batch_id=batch_id, reason="batch cancelled by client")
    return _controlled(batch_id, done, request, shared)


@router.post(
    "/{batch_id}/retry",
    status_code=202,
    response_model=BatchControlled,
    summary="Retry a batch's failed jobs",
    responses=problems(404, 409, 429),
    dependencies=[ReadLimited],
)
async def retry(batch_id: uuid.UUID, request: Request, tenant_id: JobsWriter, shared: Shared) -> BatchControlled:
    """Retry every failed or partially failed job of the batch (only their failed steps)."""
    async with shared.sessions.begin() as session:
        done = await retry_batch(session, tenant_id=tenant_id, batch_id=batch_id)
    return _controlled(batch_id, done, request, shared)


def _controlled(batch_id: uuid.UUID, done: Controlled, request: Request, shared: Resources) -> BatchControlled:
    with log_context(batch_id=str(batch_id)):
        log.info("batch controlled", extra={"state": done.state, "jobs": done.changed})
    return BatchControlled(
        batch_id=batch_id,
        state=done.state,
        jobs_changed=done.changed,
        status_url=str(request.url_for("read_batch", batch_id=batch_id)),
    )
