"""Batches: submit many URLs or files with one pipeline, follow them, cancel or retry them."""

import asyncio
import contextlib
import csv
import dataclasses
import functools
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from starlette.datastructures import UploadFile

from pixtools_gateway.adapters.uploads import limited_receive, probe_upload
from pixtools_gateway.api.deps import Resources, Shared, TenantId
from pixtools_gateway.api.jobs import parse_pipeline, read_json_object
from pixtools_gateway.errors import InvalidRequest, Problem, UnsupportedMedia, UploadTooLarge
from pixtools_gateway.handlers.batch_reads import batch_state, batch_totals, fetch_batch, progress_of, read_batch_view
from pixtools_gateway.handlers.batches import MAX_ITEMS, BatchItem, BatchRequest, BatchSource, check_size, create_batch
from pixtools_gateway.handlers.control import Controlled, cancel_batch, retry_batch
from pixtools_gateway.source_urls import check_source_url, printable
from pixtools_gateway.views import TERMINAL_STATES, BatchAccepted, BatchControlled, BatchView
from pixtools_gateway.webhook_targets import check_webhook_url
from pixtools_platform.logs import log_context
from pixtools_platform.telemetry import current_trace_context

router = APIRouter(prefix="/v1/batches", tags=["batches"])
log = logging.getLogger(__name__)

_JSON_LIMIT = 4 * 1024 * 1024
_CSV_LIMIT = 4 * 1024 * 1024
_POLL_S = 1.0
_ITEM_ID_LENGTH = 200

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items", "pipeline"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "maxItems": MAX_ITEMS,
                            "items": {
                                "type": "object",
                                "required": ["url"],
                                "properties": {"url": {"type": "string"}, "id": {"type": "string"}},
                            },
                        },
                        "pipeline": {"type": "array"},
                        "webhook_url": {"type": "string", "description": "Called once, when the batch is terminal."},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["pipeline"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV with 'url' and 'id' columns.",
                        },
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "pipeline": {"type": "string", "description": "The pipeline as JSON."},
                        "webhook_url": {"type": "string"},
                    },
                }
            },
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=BatchAccepted,
    summary="Submit up to 1000 URLs (JSON or CSV) or files with one pipeline",
    openapi_extra=_BATCH_BODY,
)
async def submit_batch(
    request: Request,
    shared: Shared,
    tenant_id: TenantId,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Create the batch and all its jobs in one transaction; 413 with nothing created above 1000 items."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        source, items, pipeline_value, webhook_url = await _read_json_batch(request)
    elif content_type.startswith("multipart/form-data"):
        source, items, pipeline_value, webhook_url = await _read_multipart_batch(request, shared)
    else:
        raise UnsupportedMedia("send JSON with 'items' and 'pipeline', or multipart with a CSV 'file' or 'files'")
    pipeline = parse_pipeline(pipeline_value)
    if webhook_url is not None and not isinstance(webhook_url, str):
        raise InvalidRequest("'webhook_url' must be text")
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
    )
    batch = created.batch
    shared.dispatch(created.events)
    with log_context(batch_id=str(batch.id), correlation_id=batch.correlation_id):
        log.info(
            "batch accepted" if created.created else "batch replayed for an idempotency key",
            extra={"jobs": batch.item_count, "duplicates": len(batch.duplicates), "source": batch.source},
        )
    accepted = BatchAccepted(
        batch_id=batch.id,
        state="accepted" if created.created else batch.state,
        items=batch.item_count + len(batch.duplicates),
        jobs=batch.item_count,
        duplicates=batch.duplicates,
        status_url=str(request.url_for("read_batch", batch_id=batch.id)),
        events_url=str(request.url_for("batch_events", batch_id=batch.id)),
    )
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202, headers={"Location": accepted.status_url})


async def _read_json_batch(request: Request) -> tuple[BatchSource, list[BatchItem], object, object]:
    body = await read_json_object(request, _JSON_LIMIT)
    raw_items = body.get("items")
    if not isinstance(raw_items, list):
        raise InvalidRequest('\'items\' must be a list of {"url": ..., "id": ...}')
    check_size(len(raw_items))
    items: list[BatchItem] = []
    problems: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            problems.append({"loc": ["items", index], "msg": "each item must be an object with a 'url'"})
            continue
        item = _url_item(raw.get("url"), raw.get("id"), ["items", index], problems)
        if item is not None:
            items.append(item)
    _raise_if(problems)
    if body.get("pipeline") is None:
        raise InvalidRequest("the 'pipeline' field is missing")
    return "urls", items, body.get("pipeline"), body.get("webhook_url")


async def _read_multipart_batch(
    request: Request, shared: Resources
) -> tuple[BatchSource, list[BatchItem], object, object]:
    settings = shared.settings
    limited = Request(request.scope, limited_receive(request.receive, settings.max_batch_upload_bytes))
    # Far more files than a batch may hold, so that too many is our 413 rather than the form parser's 400.
    async with limited.form(max_files=MAX_ITEMS * 100, max_fields=8) as form:
        pipeline_value, webhook_url = form.get("pipeline"), form.get("webhook_url")
        if not isinstance(pipeline_value, str):
            raise InvalidRequest("the 'pipeline' field is missing")
        csv_file = form.get("file")
        files = [value for value in form.getlist("files") if isinstance(value, UploadFile)]
        if isinstance(csv_file, UploadFile) and files:
            raise InvalidRequest("send either a CSV 'file' or image 'files', not both")
        if isinstance(csv_file, UploadFile):
            text = await csv_file.read(_CSV_LIMIT + 1)
            if len(text) > _CSV_LIMIT:
                raise UploadTooLarge(f"the CSV exceeds {_CSV_LIMIT} bytes")
            return "csv", _csv_items(text), pipeline_value, webhook_url
        if not files:
            raise InvalidRequest("send a CSV 'file' with a 'url' column, or one or more image 'files'")
        check_size(len(files))
        items = [
            await _file_item(upload, index, settings.max_upload_bytes, settings.max_pixels)
            for index, upload in enumerate(files)
        ]
    return "files", items, pipeline_value, webhook_url


def _csv_items(data: bytes) -> list[BatchItem]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidRequest(f"the CSV is not UTF-8: {error}") from error
    reader = csv.DictReader(io.StringIO(text))
    try:
        columns = {name.strip().lower(): name for name in reader.fieldnames or [] if name}
        if "url" not in columns:
            raise InvalidRequest("the CSV needs a header row with a 'url' column (and optionally 'id')")
        rows = list(reader)
    except csv.Error as error:
        raise InvalidRequest(f"the CSV is malformed: {error}") from error
    check_size(len(rows))
    items: list[BatchItem] = []
    problems: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        item_id = row.get(columns["id"]) if "id" in columns else None
        item = _url_item(row.get(columns["url"]), item_id or None, ["file", f"row {number}"], problems)
        if item is not None:
            items.append(item)
    _raise_if(problems)
    return items


def _url_item(url: object, item_id: object, loc: list[Any], problems: list[dict[str, Any]]) -> BatchItem | None:
    if item_id is not None and (
        not isinstance(item_id, str | int) or len(str(item_id)) > _ITEM_ID_LENGTH or not printable(str(item_id))
    ):
        problems.append(
            {"loc": [*loc, "id"], "msg": f"'id' must be printable text of at most {_ITEM_ID_LENGTH} characters"}
        )
        return None
    try:
        checked = check_source_url(url, "url")
    except InvalidRequest as error:
        problems.append({"loc": [*loc, "url"], "msg": error.detail})
        return None
    return BatchItem(item_id=None if item_id is None else str(item_id), url=checked)


async def _file_item(upload: UploadFile, index: int, max_bytes: int, max_pixels: int) -> BatchItem:
    data = await upload.read(max_bytes + 1)
    name = (upload.filename or f"file-{index}")[:255]
    if len(data) > max_bytes:
        raise UploadTooLarge(f"file {index} ({name}) exceeds {max_bytes} bytes")
    try:
        probed = probe_upload(data, max_pixels=max_pixels)
    except Problem as error:
        error.detail = f"file {index} ({name}): {error.detail}"
        raise
    return BatchItem(item_id=None, upload=dataclasses.replace(probed, name=name))


def _raise_if(problems: list[dict[str, Any]]) -> None:
    if problems:
        raise InvalidRequest(f"{len(problems)} item(s) are invalid; nothing was created", errors=problems[:100])


@router.get(
    "/{batch_id}", response_model=BatchView, summary="Read a batch, its totals and a page of items", name="read_batch"
)
async def read_batch(
    batch_id: uuid.UUID,
    request: Request,
    tenant_id: TenantId,
    shared: Shared,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """Totals by state and progress are computed in SQL; `items` is one page in batch order."""
    output_url = functools.partial(shared.output_url, str(request.url_for("list_all")).split("?")[0])

    async with shared.reader.connect() as connection:
        view = await read_batch_view(
            connection, tenant_id=tenant_id, batch_id=batch_id, offset=offset, limit=limit, output_url=output_url
        )
    return Response(view.model_dump_json(), media_type="application/json")


@router.get("/{batch_id}/events", summary="Stream a batch's progress as server-sent events", name="batch_events")
async def batch_events(batch_id: uuid.UUID, tenant_id: TenantId, shared: Shared) -> EventSourceResponse:
    """A 'progress' event whenever the totals change, and a final 'batch' event when the batch is terminal."""
    async with shared.reader.connect() as connection:
        await fetch_batch(connection, tenant_id, batch_id)

    async def stream() -> AsyncIterator[dict[str, str]]:
        async for name, data in _batch_progress(shared, tenant_id, batch_id):
            yield {"event": name, "data": json.dumps(data, default=str)}

    return EventSourceResponse(stream(), ping=15)


async def _batch_progress(
    shared: Resources, tenant_id: uuid.UUID, batch_id: uuid.UUID
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    sent: dict[str, Any] | None = None
    with shared.notifications.watch(str(batch_id)) as changed:
        while True:
            changed.clear()
            async with shared.reader.connect() as connection:
                batch = await fetch_batch(connection, tenant_id, batch_id)
                totals = await batch_totals(connection, batch_id)
            state = batch_state(batch, totals)
            payload = {
                "batch_id": str(batch_id),
                "state": state,
                "totals": totals.model_dump(),
                "progress": progress_of(totals).model_dump(),
            }
            if payload != sent:
                sent = payload
                yield "progress", payload
            if batch.finished_at is not None and state in TERMINAL_STATES:
                yield "batch", {**payload, "finished_at": batch.finished_at}
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=_POLL_S)


@router.delete("/{batch_id}", response_model=BatchControlled, summary="Cancel a batch")
async def cancel(batch_id: uuid.UUID, request: Request, tenant_id: TenantId, shared: Shared) -> BatchControlled:
    """Cancel every queued or running job of the batch; repeating the call is harmless."""
    async with shared.sessions.begin() as session:
        done = await cancel_batch(session, tenant_id=tenant_id, batch_id=batch_id, reason="batch cancelled by client")
    return _controlled(batch_id, done, request, shared)


@router.post(
    "/{batch_id}/retry", status_code=202, response_model=BatchControlled, summary="Retry a batch's failed jobs"
)
async def retry(batch_id: uuid.UUID, request: Request, tenant_id: TenantId, shared: Shared) -> BatchControlled:
    """Retry every failed or partially failed job of the batch (only their failed steps)."""
    async with shared.sessions.begin() as session:
        done = await retry_batch(session, tenant_id=tenant_id, batch_id=batch_id)
    return _controlled(batch_id, done, request, shared)


def _controlled(batch_id: uuid.UUID, done: Controlled, request: Request, shared: Resources) -> BatchControlled:
    shared.dispatch(done.events)
    with log_context(batch_id=str(batch_id)):
        log.info("batch controlled", extra={"state": done.state, "jobs": done.changed})
    return BatchControlled(
        batch_id=batch_id,
        state=done.state,
        jobs_changed=done.changed,
        status_url=str(request.url_for("read_batch", batch_id=batch_id)),
    )
