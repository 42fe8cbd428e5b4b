"""The ingest domain: run one CPU step and say what comes next."""

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
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
    output_key,
    step_failed,
    step_started,
)
from pixtools_imaging import EncodedImage, ImageError, convert, extract_metadata, resize
from pixtools_ingest.errors import UnknownOperation
from pixtools_platform.blobstore import BlobNotFound, BlobStore

T = TypeVar("T")
PRODUCER = "ingest"


@dataclass(frozen=True)
class Dependencies:
    """What a step needs: storage, a way to run CPU work off the event loop, and limits."""

    blobs: BlobStore
    run_cpu: Callable[[Callable[[], T]], Awaitable[T]]
    announce: Callable[[Event], Coroutine[Any, Any, None]]
    max_pixels: int


async def run_step(request: StepRequested, deps: Dependencies) -> list[Event]:
    """Run a resize, convert or metadata step; return the next requests and the step's outcome."""
    started_at = datetime.now(UTC)
    announced = asyncio.create_task(deps.announce(step_started(request, PRODUCER)))
    try:
        try:
            data = await deps.blobs.get(request.input.key)
        except BlobNotFound:
            return [step_failed(request, "input.missing", f"input {request.input.key} is gone", PRODUCER, started_at)]
        try:
            image, outputs, result = await _apply(request, data, deps)
        except ImageError as error:
            return [step_failed(request, error.code, str(error), PRODUCER, started_at)]
    finally:
        await announced
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
        artifact = await _store(request, deps, "metadata", "json", body, "application/json", role="artifact")
        return request.input, [artifact], dict(metadata)
    else:
        raise UnknownOperation(f"ingest does not run {spec.op!r}")
    output = await _store_image(request, deps, encoded)
    return _as_ref(output), [output], None


async def _store_image(request: StepRequested, deps: Dependencies, image: EncodedImage) -> StepOutput:
    extension = "jpg" if image.format == "jpeg" else image.format
    return await _store(
        request, deps, "image", extension, image.data, image.content_type, "image", image.width, image.height
    )


async def _store(
    request: StepRequested,
    deps: Dependencies,
    name: str,
    extension: str,
    data: bytes,
    content_type: str,
    role: str,
    width: int | None = None,
    height: int | None = None,
) -> StepOutput:
    key = output_key(request, name, extension)
    await deps.blobs.put(key, data, content_type)
    return StepOutput.model_validate(
        {
            "key": key,
            "content_type": content_type,
            "bytes": len(data),
            "sha256": sha256(data).hexdigest(),
            "width": width,
            "height": height,
            "name": name,
            "role": role,
        }
    )


def _as_ref(output: StepOutput) -> ObjectRef:
    return ObjectRef.model_validate(output.model_dump(include=set(ObjectRef.model_fields)))
