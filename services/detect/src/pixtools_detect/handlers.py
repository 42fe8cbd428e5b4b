"""The detect domain: find objects in one image, store what was asked for, say what comes next."""

import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from pixtools_contracts import DetectParams, DetectStep, Event, ObjectsDetected, StepOutput, StepRequested, envelope_of
from pixtools_detect.errors import TooManySlices, UnknownClassNames
from pixtools_detect.overlay import draw_overlay
from pixtools_detect.results import DetectionResult
from pixtools_imaging import ImageError, encode, load
from pixtools_platform import steps
from pixtools_platform.blobstore import BlobStore
from pixtools_platform.broker import PermanentError
from pixtools_platform.outputs import store_output

T = TypeVar("T")
PRODUCER = "detect"


class Detector(Protocol):
    """What the handler needs of a detector."""

    async def detect(self, image: np.ndarray, params: DetectParams) -> DetectionResult:
        """Detect objects in an RGB uint8 image."""
        ...


@dataclass(frozen=True)
class Dependencies:
    """Storage, the detector, a way to run CPU work off the loop, and limits."""

    blobs: BlobStore
    detector: Detector
    run_cpu: Callable[[Callable[[], T]], Awaitable[T]]
    announce: Callable[[Event], Coroutine[Any, Any, None]]
    max_pixels: int
    overlay_quality: int = 85
    announce_after_s: float = 0.25


async def run_detect(request: StepRequested, deps: Dependencies) -> list[Event]:
    """Detect, store the detections (and overlay), pass the image on unchanged."""
    spec = request.step.spec
    if not isinstance(spec, DetectStep):
        raise PermanentError(f"detect does not run {spec.op!r}")

    async def analyse(data: bytes) -> tuple[np.ndarray, DetectionResult]:
        pixels = await deps.run_cpu(lambda: _rgb_pixels(data, deps.max_pixels))
        return pixels, await deps.detector.detect(pixels, spec.params)

    async def produce(found: tuple[np.ndarray, DetectionResult], started_at: datetime) -> steps.Produced:
        pixels, result = found
        outputs = [await _store_json(request, deps, result)]
        overlay = None
        if spec.params.overlay:
            overlay = await _store_overlay(request, deps, pixels, result)
            outputs.append(overlay)
        detected = ObjectsDetected(
            **envelope_of(request, PRODUCER),
            step_id=request.step.id,
            image=request.input,
            model_id=result.model_id,
            model_sha256=result.model_sha256,
            detections=result.detections,
            counts=result.counts,
            overlay=overlay.ref() if overlay else None,
        )
        return steps.Produced(image=request.input, outputs=outputs, result=result.to_json(), events=[detected])

    return await steps.run_step(
        request,
        deps,
        producer=PRODUCER,
        analyse=analyse,
        produce=produce,
        rejects=(ImageError, UnknownClassNames, TooManySlices),
    )


def _rgb_pixels(data: bytes, max_pixels: int) -> np.ndarray:
    decoded = load(data, max_pixels=max_pixels)
    return np.asarray(decoded.image.convert("RGB"))


async def _store_json(request: StepRequested, deps: Dependencies, result: DetectionResult) -> StepOutput:
    body = json.dumps(result.to_json(), sort_keys=True).encode()
    return await store_output(
        deps.blobs,
        request,
        name="detections",
        extension="json",
        data=body,
        content_type="application/json",
        role="artifact",
    )


async def _store_overlay(
    request: StepRequested, deps: Dependencies, pixels: np.ndarray, result: DetectionResult
) -> StepOutput:
    def render() -> tuple[bytes, int, int]:
        drawn = Image.fromarray(draw_overlay(pixels, result.detections))
        encoded = encode(drawn, "jpeg", quality=deps.overlay_quality)
        return encoded.data, encoded.width, encoded.height

    data, width, height = await deps.run_cpu(render)
    return await store_output(
        deps.blobs,
        request,
        name="overlay",
        extension="jpg",
        data=data,
        content_type="image/jpeg",
        role="artifact",
        width=width,
        height=height,
    )
