"""The ingest step handler with small in-memory adapters: outputs, the next slip, and failures."""

import io
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest
from PIL import Image

from pixtools_contracts import (
    Event,
    ObjectRef,
    Pipeline,
    StepCompleted,
    StepFailed,
    StepRequested,
    StepStarted,
    first_steps,
    plan,
)
from pixtools_ingest.handlers import Dependencies, run_step
from pixtools_platform.blobstore import BlobNotFound

T = TypeVar("T")


class MemoryBlobStore:
    """A dict-backed blob store for unit tests."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (data, content_type)

    async def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise BlobNotFound(key)
        return self.objects[key][0]

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        return None

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _jpeg(width: int = 640, height: int = 480) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def _request(pipeline: list[object], data: bytes, blobs: MemoryBlobStore) -> StepRequested:
    blobs.objects["t/j/original"] = (data, "image/jpeg")
    [(step, rest)] = first_steps(plan(Pipeline.model_validate(pipeline)))
    return StepRequested(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="corr",
        producer="gateway",
        service="ingest",
        input=ObjectRef(key="t/j/original", content_type="image/jpeg", bytes=len(data), sha256="0" * 64),
        step=step,
        remaining=rest,
    )


def _deps(blobs: MemoryBlobStore, announced: list[Event], announce_after_s: float = 0.25) -> Dependencies:
    async def run_cpu(work: Callable[[], T]) -> T:
        return work()

    async def announce(event: Event) -> None:
        announced.append(event)

    return Dependencies(
        blobs=blobs, run_cpu=run_cpu, announce=announce, max_pixels=50_000_000, announce_after_s=announce_after_s
    )


async def test_resize_stores_its_output_at_a_deterministic_key_and_requests_every_branch() -> None:
    blobs, announced = MemoryBlobStore(), []
    pipeline = [
        {"op": "resize", "params": {"width": 256}},
        {"parallel": [[{"op": "convert", "params": {"format": "webp"}}], [{"op": "metadata"}]]},
    ]
    request = _request(pipeline, _jpeg(), blobs)
    *following, completed = await run_step(request, _deps(blobs, announced))
    assert isinstance(completed, StepCompleted)
    assert announced == [], "a step faster than the threshold announces no start"
    key = f"jobs/{request.tenant_id}/{request.job_id}/steps/0/image.jpg"
    assert completed.image.key == key
    assert key in blobs.objects
    assert (completed.image.width, completed.image.height) == (256, 192)
    assert [event.step.id for event in following] == ["1.0.0", "1.1.0"]
    assert all(event.input.key == key for event in following)
    assert completed.next_step_ids == ["1.0.0", "1.1.0"]
    assert completed.correlation_id == "corr"


async def test_running_a_step_twice_overwrites_instead_of_duplicating() -> None:
    blobs, announced = MemoryBlobStore(), []
    request = _request([{"op": "convert", "params": {"format": "png"}}], _jpeg(), blobs)
    first = await run_step(request, _deps(blobs, announced))
    second = await run_step(request, _deps(blobs, announced))
    assert len(blobs.objects) == 2  # the original and one output
    assert first[-1].image == second[-1].image  # type: ignore[union-attr]


async def test_metadata_passes_the_image_through_and_stores_a_json_artifact() -> None:
    blobs, announced = MemoryBlobStore(), []
    request = _request([{"op": "metadata"}], _jpeg(), blobs)
    [completed] = await run_step(request, _deps(blobs, announced))
    assert isinstance(completed, StepCompleted)
    assert completed.image == request.input
    [artifact] = completed.outputs
    assert artifact.role == "artifact"
    assert artifact.content_type == "application/json"
    assert completed.result is not None
    assert completed.result["width"] == 640


async def test_corrupt_image_fails_the_step_with_an_error_class() -> None:
    blobs, announced = MemoryBlobStore(), []
    request = _request([{"op": "convert", "params": {"format": "png"}}], _jpeg()[:200], blobs)
    [failed] = await run_step(request, _deps(blobs, announced))
    assert isinstance(failed, StepFailed)
    assert failed.error.code == "image.corrupt"
    assert failed.step_id == "0"


async def test_missing_input_fails_the_step_rather_than_retrying_forever() -> None:
    blobs, announced = MemoryBlobStore(), []
    request = _request([{"op": "metadata"}], _jpeg(), blobs)
    blobs.objects.clear()
    [failed] = await run_step(request, _deps(blobs, announced))
    assert isinstance(failed, StepFailed)
    assert failed.error.code == "input.missing"


@pytest.mark.parametrize("limit", [1000])
async def test_pixel_limit_fails_the_step(limit: int) -> None:
    blobs, announced = MemoryBlobStore(), []
    request = _request([{"op": "convert", "params": {"format": "png"}}], _jpeg(), blobs)
    deps = _deps(blobs, announced)
    deps = Dependencies(blobs=deps.blobs, run_cpu=deps.run_cpu, announce=deps.announce, max_pixels=limit)
    [failed] = await run_step(request, deps)
    assert isinstance(failed, StepFailed)
    assert failed.error.code == "image.too_large"


async def test_a_step_slower_than_the_threshold_announces_its_start() -> None:
    blobs, announced = MemoryBlobStore(), []
    request = _request([{"op": "convert", "params": {"format": "png"}}], _jpeg(), blobs)
    await run_step(request, _deps(blobs, announced, announce_after_s=0))
    assert [type(event) for event in announced] == [StepStarted]
    assert announced[0].step_id == "0"  # type: ignore[attr-defined]
