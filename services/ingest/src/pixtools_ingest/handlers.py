"""The ingest domain: fetch a job's source, or run one CPU step; say what comes next."""

import hashlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import JsonValue

from pixtools_contracts import (
    ConvertStep,
    ErrorInfo,
    Event,
    JobSubmitted,
    MetadataStep,
    ObjectRef,
    ResizeStep,
    SourceFailed,
    SourceFetched,
    SourceRequested,
    StepRequested,
    envelope_of,
    flatten,
    next_requests,
    original_key,
)
from pixtools_imaging import EncodedImage, ImageError, ImageInfo, convert, extract_metadata, probe, resize, sniff
from pixtools_ingest.adapters.fetching import SourceFetching, fetch_with_retries
from pixtools_ingest.errors import SourceUnreachable, UnknownOperation
from pixtools_platform import steps
from pixtools_platform.blobstore import BlobStore
from pixtools_platform.outputs import store_image, store_output

T = TypeVar("T")
Metadata = dict[str, JsonValue]
PRODUCER = "ingest"


@dataclass(frozen=True)
class Dependencies:
    """What a step needs: storage, a way to run CPU work off the event loop, limits, and how sources are fetched."""

    blobs: BlobStore
    run_cpu: Callable[[Callable[[], T]], Awaitable[T]]
    announce: Callable[[Event], Coroutine[Any, Any, None]]
    max_pixels: int
    announce_after_s: float = 0.25
    fetching: SourceFetching = field(default_factory=SourceFetching)


async def run_step(request: StepRequested, deps: Dependencies) -> list[Event]:
    """Run a resize, convert or metadata step; return the next requests and the step's outcome."""

    async def analyse(data: bytes) -> EncodedImage | Metadata:
        return await deps.run_cpu(_operation(request, data, deps.max_pixels))

    async def produce(made: EncodedImage | Metadata, started_at: datetime) -> steps.Produced:
        if isinstance(made, EncodedImage):
            output = await store_image(deps.blobs, request, made)
            return steps.Produced(image=output.ref(), outputs=[output])
        artifact = await store_output(
            deps.blobs,
            request,
            name="metadata",
            extension="json",
            data=json.dumps(made, sort_keys=True).encode(),
            content_type="application/json",
            role="artifact",
        )
        return steps.Produced(image=request.input, outputs=[artifact], result=dict(made))

    return await steps.run_step(
        request, deps, producer=PRODUCER, analyse=analyse, produce=produce, rejects=(ImageError,)
    )


def _operation(request: StepRequested, data: bytes, max_pixels: int) -> Callable[[], EncodedImage | Metadata]:
    """The CPU work of the step's op: an encoded image, or the image's metadata."""
    spec = request.step.spec
    if isinstance(spec, ResizeStep):
        resize_params = spec.params
        return lambda: resize(data, resize_params, max_pixels=max_pixels)
    if isinstance(spec, ConvertStep):
        convert_params = spec.params
        return lambda: convert(data, convert_params, max_pixels=max_pixels)
    if isinstance(spec, MetadataStep):
        return lambda: extract_metadata(data, max_pixels=max_pixels)
    raise UnknownOperation(f"ingest does not run {spec.op!r}")


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
