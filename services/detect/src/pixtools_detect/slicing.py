"""Where the slices of an image go (SAHI style): overlapping windows that cover it, plus the whole frame.

Every window costs one forward pass, whatever its size, so a thin image (shorter than half a slice) is cut
into fewer, longer windows holding about one slice's pixels each: a 1 x 60000 strip is one pass, not 180.
"""

from dataclasses import dataclass
from typing import Literal

from pixtools_contracts import SahiParams


@dataclass(frozen=True)
class Window:
    """A rectangle of the image in pixels, half-open: columns x0..x1-1, rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.y1 - self.y0


def slice_starts(length: int, size: int, overlap: float) -> list[int]:
    """Window offsets along an axis, stepping by size*(1-overlap), the last one flush with the end."""
    if length <= size:
        return [0]
    step = max(1, size - int(overlap * size))
    starts = list(range(0, length - size, step))
    # Shifting the last window back to end at the border keeps every slice full size, so none needs padding.
    starts.append(length - size)
    return starts


def slice_windows(width: int, height: int, size: int, overlap: float) -> list[Window]:
    """Overlapping windows covering a width x height image, row by row."""
    return [
        Window(x, y, min(x + size, width), min(y + size, height))
        for y in slice_starts(height, size, overlap)
        for x in slice_starts(width, size, overlap)
    ]


def plan_windows(width: int, height: int, sahi: SahiParams | Literal[False]) -> list[Window]:
    """The windows one image is inferred on: the whole frame alone, or slices (plus the whole frame if asked)."""
    whole = Window(0, 0, width, height)
    if sahi is False or (width <= sahi.slice and height <= sahi.slice):
        return [whole]
    short = min(width, height)
    if short < sahi.slice // 2:
        windows = thin_windows(width, height, sahi.slice * sahi.slice // short, sahi.overlap)
        if windows == [whole]:
            return windows
    else:
        windows = slice_windows(width, height, sahi.slice, sahi.overlap)
    if sahi.full_image:
        windows.append(whole)
    return windows


def thin_windows(width: int, height: int, longest: int, overlap: float) -> list[Window]:
    """Windows across the whole short side of a thin image, at most `longest` long, overlapping along its length."""
    if width >= height:
        return [Window(x, 0, min(x + longest, width), height) for x in slice_starts(width, longest, overlap)]
    return [Window(0, y, width, min(y + longest, height)) for y in slice_starts(height, longest, overlap)]
