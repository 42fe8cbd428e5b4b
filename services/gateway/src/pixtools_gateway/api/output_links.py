"""Outputs opened through the gateway's signed links: no key, for `<img>` tags and browser tabs."""

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from pixtools_db import Output
from pixtools_gateway.api.deps import Shared
from pixtools_gateway.api.jobs import OUTPUT_MEDIA_TYPES
from pixtools_gateway.errors import NotFound
from pixtools_gateway.openapi import download, problem, problems
from pixtools_gateway.output_links import PREFIX, link_path
from pixtools_platform.blobstore import BlobNotFound

router = APIRouter(prefix=PREFIX, tags=["jobs"])

_EXTENSIONS = {"image/jpeg": "jpg", "image/svg+xml": "svg", "application/json": "json"}


@router.get(
    "/{job_id}/{output_id}",
    summary="Open an output through a signed link",
    name="open_output_link",
    response_class=Response,
    # The link is the credential; an empty requirement says so to tools that read the document.
    openapi_extra={"security": []},
    responses={
        **download("The output's bytes, in its `content_type`.", OUTPUT_MEDIA_TYPES),
        **problem(403, "The signature does not match the link, or the link has expired."),
        **problems(404),
    },
)
async def open_output_link(
    job_id: uuid.UUID,
    output_id: uuid.UUID,
    expires: Annotated[int, Query(ge=0, description="Unix time the link expires at.")],
    signature: Annotated[str, Query(max_length=100, description="HMAC-SHA256 of the path and expiry.")],
    shared: Shared,
) -> Response:
    """The output's bytes; the link itself is the credential, as a job's `outputs[].url` lists it."""
    shared.links.check(link_path(job_id, output_id), expires, signature)
    async with shared.sessions() as session:
        output = await session.scalar(select(Output).where(Output.id == output_id, Output.job_id == job_id))
    if output is None:
        raise NotFound(f"no output {output_id} in job {job_id}")
    try:
        data = await shared.blobs.get(output.key)
    except BlobNotFound as error:
        raise NotFound("the output has expired") from error
    extension = _EXTENSIONS.get(output.content_type, output.content_type.rpartition("/")[2])
    headers = {
        "ETag": f'"{output.sha256}"',
        # Shown inline under a readable name; cached by the browser only, and not past the link's expiry.
        "Content-Disposition": f'inline; filename="{output.step_id}-{output.name}.{extension}"',
        "Cache-Control": f"private, max-age={max(0, expires - int(time.time()))}",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(data, media_type=output.content_type, headers=headers)
