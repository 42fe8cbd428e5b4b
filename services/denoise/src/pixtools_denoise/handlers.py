"""The denoise domain: clean one image, store it in its own format family, say what comes next."""

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image
from pydantic import JsonValue

from pixtools_contracts import DenoiseStep, Event, StepRequested
from pixtools_denoise.errors import UnsupportedImage
from pixtools_imaging import OUTPUT_FAMILY, EncodedImage, ImageError, encode, load
from pixtools_platform import steps
from pixtools_platform.blobstore import BlobStore
from pixtools_platform.broker import PermanentError
from pixtools_platform.outputs import store_image

T = TypeVar("T")
PRODUCER = "denoise"


class Denoiser(Protocol):
    """What the handler needs of a denoiser."""

    model_id: str
    weights_sha256: str

    async def denoise(self, image: np.ndarray) -> np.ndarray:
        """Denoise an (H, W) or (H, W, C) array; alpha is left untouched."""
        ...


@dataclass(frozen=True)
class Dependencies:
    """Storage, the denoiser, a way to run codec work off the loop, and limits."""

    blobs: BlobStore
    denoiser: Denoiser
    run_cpu: Callable[[Callable[[], T]], Awaitable[T]]
    announce: Callable[[Event], Coroutine[Any, Any, None]]
    max_pixels: int
    output_quality: int = 95
    announce_after_s: float = 0.25


@dataclass(frozen=True)
class _Decoded:
    pixels: np.ndarray
    mode: str
    output_format: str
    icc_profile: bytes | None


@dataclass(frozen=True)
class _Denoised:
    source: _Decoded
    pixels: np.ndarray
    inference_ms: float


async def run_denoise(request: StepRequested, deps: Dependencies) -> list[Event]:
    """Denoise the input and pass the cleaned image to the next steps."""
    if not isinstance(request.step.spec, DenoiseStep):
        raise PermanentError(f"denoise does not run {request.step.spec.op!r}")

    async def analyse(data: bytes) -> _Denoised:
        decoded = await deps.run_cpu(lambda: _decode(data, deps.max_pixels))
        began = perf_counter()
        cleaned = await deps.denoiser.denoise(decoded.pixels)
        return _Denoised(decoded, cleaned, (perf_counter() - began) * 1000)

    async def produce(denoised: _Denoised, started_at: datetime) -> steps.Produced:
        encoded = await deps.run_cpu(lambda: _encode(denoised.pixels, denoised.source, deps.output_quality))
        output = await store_image(deps.blobs, request, encoded)
        result: dict[str, JsonValue] = {
            "model_id": deps.denoiser.model_id,
            "weights_sha256": deps.denoiser.weights_sha256,
            "width": encoded.width,
            "height": encoded.height,
            "inference_ms": round(denoised.inference_ms, 1),
            "duration_ms": round((datetime.now(UTC) - started_at).total_seconds() * 1000, 1),
        }
        return steps.Produced(image=output.ref(), outputs=[output], result=result)

    return await steps.run_step(
        request, deps, producer=PRODUCER, analyse=analyse, produce=produce, rejects=(ImageError, UnsupportedImage)
    )


def _decode(data: bytes, max_pixels: int) -> _Decoded:
    # The shared decoder normalises to 8-bit L, LA, RGB or RGBA (16-bit sources are scaled to 8 bits).
    decoded = load(data, max_pixels=max_pixels)
    image = decoded.image
    return _Decoded(np.asarray(image), image.mode, OUTPUT_FAMILY[decoded.format], decoded.icc_profile)


def _encode(pixels: np.ndarray, decoded: _Decoded, quality: int) -> EncodedImage:
    image = Image.fromarray(pixels, mode=decoded.mode)
    lossy = decoded.output_format in ("jpeg", "webp", "avif")
    return encode(image, decoded.output_format, quality=quality if lossy else None, icc_profile=decoded.icc_profile)
