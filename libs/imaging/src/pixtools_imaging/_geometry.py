"""Resize arithmetic: from a source size and the requested box to what to resample, crop and pad."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pixtools_contracts import ResizeParams

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ResizePlan:
    """Resample `crop` of the source (all of it when None) to `scaled`, then centre it on `canvas` if set."""

    scaled: tuple[int, int]
    crop: Box | None = None
    canvas: tuple[int, int] | None = None

    @property
    def output_size(self) -> tuple[int, int]:
        """The size of the finished image."""
        return self.canvas or self.scaled

    def decode_at_least(self, source: tuple[int, int]) -> tuple[int, int]:
        """The smallest decoded source size that still resamples down to `scaled`, for shrink-on-load."""
        if self.crop is None:
            return self.scaled
        left, top, right, bottom = self.crop
        return (
            math.ceil(self.scaled[0] * source[0] / (right - left)),
            math.ceil(self.scaled[1] * source[1] / (bottom - top)),
        )


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def _centred_crop(width: int, height: int, box_width: int, box_height: int) -> Box:
    """The largest centred region of the source with the box's aspect ratio."""
    if width * box_height > height * box_width:
        crop_width = height * box_width / box_height
        left = (width - crop_width) / 2
        return (left, 0.0, left + crop_width, float(height))
    crop_height = width * box_height / box_width
    top = (height - crop_height) / 2
    return (0.0, top, float(width), top + crop_height)


def plan_resize(source: tuple[int, int], params: ResizeParams) -> ResizePlan:
    """Work out the resize for an upright source size; without upscale the box is clamped to the source."""
    width, height = source
    if params.width is None or params.height is None:
        # One dimension: every fit mode means the same proportional scale.
        scale = params.width / width if params.width is not None else (params.height or height) / height
        return ResizePlan(_scaled(width, height, scale if params.upscale else min(scale, 1.0)))
    box_width, box_height = params.width, params.height
    if not params.upscale:
        box_width, box_height = min(box_width, width), min(box_height, height)
    if params.fit == "fill":
        return ResizePlan((box_width, box_height))
    if params.fit == "cover":
        return ResizePlan((box_width, box_height), crop=_centred_crop(width, height, box_width, box_height))
    scaled = _scaled(width, height, min(box_width / width, box_height / height))
    if params.fit == "contain":
        # The pad always reaches the requested box; only the picture inside it is never enlarged.
        return ResizePlan(scaled, canvas=(params.width, params.height))
    return ResizePlan(scaled)
