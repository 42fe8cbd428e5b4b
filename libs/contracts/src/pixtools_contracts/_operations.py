"""The operation registry: each op, its parameter model and the service that runs it."""

from dataclasses import dataclass
from typing import Literal, Self

from pydantic import Field, model_validator

from pixtools_contracts._base import Params

ServiceName = Literal["ingest", "denoise", "detect"]


class ResizeParams(Params):
    """Resize to a box; give width, height or both."""

    width: int | None = Field(default=None, ge=1, le=16384, description="Target width in pixels.")
    height: int | None = Field(default=None, ge=1, le=16384, description="Target height in pixels.")
    fit: Literal["contain", "cover", "fill", "inside"] = Field(
        default="inside",
        description=(
            "inside: keep aspect, fit within the box; contain: keep aspect, pad to the box; "
            "cover: keep aspect, crop to fill the box; fill: stretch to the box."
        ),
    )
    upscale: bool = Field(default=False, description="Allow enlarging images smaller than the box.")

    @model_validator(mode="after")
    def _needs_a_dimension(self) -> Self:
        if self.width is None and self.height is None:
            raise ValueError("resize needs width, height or both")
        return self


class ConvertParams(Params):
    """Encode to another format."""

    format: Literal["jpeg", "png", "webp", "avif"] = Field(description="Output format.")
    quality: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Encoder quality for lossy formats (jpeg 85, webp 80, avif 60 when omitted); ignored for png.",
    )
    strip_metadata: bool = Field(
        default=True, description="Drop EXIF (including GPS) and XMP; the ICC profile is kept."
    )


class MetadataParams(Params):
    """Extract dimensions, format and EXIF (including GPS) as a JSON output."""


class DenoiseParams(Params):
    """Remove Gaussian-like noise with DnCNN (colour, blind noise level)."""


class SahiParams(Params):
    """Sliced inference settings."""

    slice: int = Field(default=416, ge=64, le=4096, description="Slice edge in pixels.")
    overlap: float = Field(default=0.2, ge=0.0, lt=0.9, description="Overlap ratio between neighbouring slices.")
    full_image: bool = Field(default=True, description="Also run the whole image letterboxed to the model size.")
    merge: Literal["nms", "greedy_nmm"] = Field(default="greedy_nmm", description="How overlapping boxes merge.")
    metric: Literal["iou", "ios"] = Field(
        default="ios", description="Match metric: intersection over union or over smaller."
    )
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="Match threshold for merging.")


class DetectParams(Params):
    """Detect and count objects with YOLOX, optionally sliced (SAHI style)."""

    confidence: float = Field(default=0.25, ge=0.0, le=1.0, description="Minimum objectness x class score.")
    classes: list[str] | None = Field(
        default=None, min_length=1, description="Class names to keep; null keeps every class."
    )
    max_detections: int = Field(default=300, ge=1, le=10000, description="Detections kept after NMS.")
    overlay: bool = Field(default=False, description="Store an annotated overlay image as an output.")
    sahi: SahiParams | Literal[False] = Field(
        default_factory=SahiParams, description="Sliced inference settings, or false for direct inference."
    )


@dataclass(frozen=True)
class Operation:
    """An operation's parameter model and the service (routing key suffix) that runs it."""

    name: str
    params: type[Params]
    service: ServiceName
    produces_image: bool


OPERATIONS: dict[str, Operation] = {
    operation.name: operation
    for operation in (
        Operation("resize", ResizeParams, "ingest", produces_image=True),
        Operation("convert", ConvertParams, "ingest", produces_image=True),
        Operation("metadata", MetadataParams, "ingest", produces_image=False),
        Operation("denoise", DenoiseParams, "denoise", produces_image=True),
        Operation("detect", DetectParams, "detect", produces_image=False),
    )
}


def service_for(op: str) -> ServiceName:
    """Name the service that runs an op."""
    return OPERATIONS[op].service
