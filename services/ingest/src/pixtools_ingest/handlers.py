"""The ingest domain: run one CPU step and say what comes next."""

import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pixtools_contracts import (
    ConvertStep,
    Event,
    MetadataStep,
    ObjectRef,
    ResizeStep,
    StepCompleted,
    StepOutput,
    StepRequested,
    envelope_of,
    next_requests,
    step_failed,
    step_started,
)
from pixtools_imaging import ImageError, convert, extract_metadata, resize
from pixtools_ingest.errors import UnknownOperation
from pixtools_ingest.fetching import SourceFetching
from pixtools_platform.blobstore import BlobNotFound, BlobStore
from pixtools_platform.outputs import store_image, store_output
from pixtools_platform.progress import announce_if_slow

T = TypeVar("T")
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
    started_at = datetime.now(UTC)
    async with announce_if_slow(deps.announce, step_started(request, PRODUCER), deps.announce_after_s):
        try:
            data = await deps.blobs.get(request.input.key)
        except BlobNotFound:
            return [step_failed(request, "input.missing", f"input {request.input.key} is gone", PRODUCER, started_at)]
        try:
            image, outputs, result = await _apply(request, data, deps)
        except ImageError as error:
            return [step_failed(request, error.code, str(error), PRODUCER, started_at)]
    following = next_requests(request, image, PRODUCER)
    completed = StepCompleted(
        **envelope_of(request, PRODUCER),
        step_id=request.step.id,
        op=request.step.spec.op,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        image=image,
        outputs=outputs,
        result=result,
        next_step_ids=[step.step.id for step in following],
    )
    return [*following, completed]


async def _apply(
    request: StepRequested, data: bytes, deps: Dependencies
) -> tuple[ObjectRef, list[StepOutput], dict[str, object] | None]:
    spec = request.step.spec
    if isinstance(spec, ResizeStep):
        params = spec.params
        encoded = await deps.run_cpu(lambda: resize(data, params, max_pixels=deps.max_pixels))
    elif isinstance(spec, ConvertStep):
        convert_params = spec.params
        encoded = await deps.run_cpu(lambda: convert(data, convert_params, max_pixels=deps.max_pixels))
    elif isinstance(spec, MetadataStep):
        metadata = await deps.run_cpu(lambda: extract_metadata(data, max_pixels=deps.max_pixels))
        body = json.dumps(metadata, sort_keys=True).encode()
        artifact = await store_output(
            deps.blobs,
            request,
            name="metadata",
            extension="json",
            data=body,
            content_type="application/json",
            role="artifact",
        )
        return request.input, [artifact], dict(metadata)
    else:
        raise UnknownOperation(f"ingest does not run {spec.op!r}")
    output = await store_image(deps.blobs, request, encoded)
    return output.ref(), [output], None
