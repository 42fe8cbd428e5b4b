"""Reading a batch submission: URLs as JSON, or a form with a CSV of URLs or with image files."""

import csv
import dataclasses
import io

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from pixtools_gateway.adapters.uploads import limited_receive, probe_upload, read_json_object
from pixtools_gateway.body_validation import form_fields, invalid_items, validated
from pixtools_gateway.errors import InvalidRequest, Problem, UploadTooLarge
from pixtools_gateway.handlers.batches import MAX_ITEMS, BatchItem, BatchSource, check_size
from pixtools_gateway.request_bodies import MAX_FORM_FIELDS, BatchUpload, BatchUrlItem, UrlBatch
from pixtools_gateway.settings import GatewaySettings

_JSON_LIMIT = 4 * 1024 * 1024
_CSV_LIMIT = 4 * 1024 * 1024
_URL_ITEMS = TypeAdapter(list[BatchUrlItem])


async def read_url_batch(request: Request) -> tuple[list[BatchItem], UrlBatch]:
    """The items and fields of a JSON batch; too many items is a 413 before any item is checked."""
    body = await read_json_object(request, _JSON_LIMIT)
    if isinstance(body.get("items"), list):
        check_size(len(body["items"]))
    batch = validated(UrlBatch, body)
    return [BatchItem(item_id=item.id, url=item.url) for item in batch.items], batch


async def read_batch_upload(
    request: Request, settings: GatewaySettings
) -> tuple[BatchSource, list[BatchItem], BatchUpload]:
    """The items and fields of a multipart batch: the URLs of its CSV, or its probed image files."""
    limited = Request(request.scope, limited_receive(request.receive, settings.max_batch_upload_bytes))
    # Far more files than a batch may hold, so that too many is our 413 rather than the form parser's 400.
    async with limited.form(max_files=MAX_ITEMS * 100, max_fields=MAX_FORM_FIELDS) as form:
        body = validated(BatchUpload, form_fields(form, BatchUpload))
        if body.file is not None:
            data = await body.file.read(_CSV_LIMIT + 1)
            if len(data) > _CSV_LIMIT:
                raise UploadTooLarge(f"the CSV exceeds {_CSV_LIMIT} bytes")
            return "csv", csv_items(data), body
        check_size(len(body.files))
        items = [
            await _file_item(upload, index, settings.max_upload_bytes, settings.max_pixels)
            for index, upload in enumerate(body.files)
        ]
    return "files", items, body


def csv_items(data: bytes) -> list[BatchItem]:
    """The URL items of a CSV with a header row naming a 'url' column and optionally an 'id' column."""
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
    ids = [row.get(columns["id"]) or None for row in rows] if "id" in columns else [None] * len(rows)
    raw = [{"url": row.get(columns["url"]), "id": item_id} for row, item_id in zip(rows, ids, strict=True)]
    try:
        items = _URL_ITEMS.validate_python(raw)
    except ValidationError as error:
        raise invalid_items(error.errors(), lambda index: ["file", f"row {index + 2}"]) from error  # row 1: header
    return [BatchItem(item_id=item.id, url=item.url) for item in items]


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
