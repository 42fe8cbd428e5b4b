"""The source of a URL job: fetch it safely, store it as the job's original, then start the slip."""

import hashlib

from pixtools_contracts import (
    ErrorInfo,
    Event,
    JobSubmitted,
    ObjectRef,
    SourceFailed,
    SourceFetched,
    SourceRequested,
    envelope_of,
    flatten,
    next_requests,
    original_key,
)
from pixtools_imaging import ImageError, ImageInfo, probe, sniff
from pixtools_ingest.errors import SourceUnreachable
from pixtools_ingest.fetching import fetch_with_retries
from pixtools_ingest.handlers import PRODUCER, Dependencies

NOT_AN_IMAGE = "fetch.not_an_image"
GAVE_UP = "fetch.gave_up"


async def fetch_source(request: SourceRequested, deps: Dependencies) -> list[Event]:
    """Fetch the URL, store it as the job's original, announce the job and request its first steps; or fail it."""
    try:
        fetched, attempts = await fetch_with_retries(request.url, deps.fetching)
    except SourceUnreachable as failure:
        return [source_failed(request, failure.code, str(failure), failure.attempts)]
    data = fetched.data
    if sniff(data) is None:
        declared = (fetched.declared_type or "no declared type")[:100]
        return [source_failed(request, NOT_AN_IMAGE, f"the URL answered with {declared}, not an image", attempts)]
    try:
        info, digest = await deps.run_cpu(lambda: _describe(data, deps.max_pixels))
    except ImageError as error:
        return [source_failed(request, error.code, str(error), attempts)]
    original = ObjectRef(
        key=original_key(request.tenant_id, request.job_id),
        content_type=info.content_type,
        bytes=len(data),
        sha256=digest,
        width=info.width,
        height=info.height,
    )
    # A storage failure raises: the consumer retries the whole request, and the same key is simply overwritten.
    await deps.blobs.put(original.key, data, original.content_type)
    envelope = envelope_of(request, PRODUCER)
    steps = flatten(request.remaining)
    # job.submitted.v1 promises a stored original, so a URL job is announced only now.
    submitted = JobSubmitted(
        **envelope,
        input=original,
        pipeline=request.pipeline,
        step_count=len(steps),
        leaf_count=sum(step.is_leaf for step in steps),
    )
    stored = SourceFetched(**envelope, url=request.url, final_url=fetched.url, input=original, attempts=attempts)
    return [*next_requests(request, original, PRODUCER), submitted, stored]


def source_failed(request: SourceRequested, code: str, message: str, attempts: int = 1) -> SourceFailed:
    """Report that a job's source could not be had, with a stable error class."""
    return SourceFailed(
        **envelope_of(request, PRODUCER),
        url=request.url,
        error=ErrorInfo(code=code, message=message),
        attempts=attempts,
    )


def _describe(data: bytes, max_pixels: int) -> tuple[ImageInfo, str]:
    """The image's type and upright size from its header (pixel cap checked), and the bytes' SHA-256."""
    return probe(data, max_pixels=max_pixels), hashlib.sha256(data).hexdigest()
