"""Split an image into fixed-size overlapping tiles whose kept centres give exactly the whole-frame result.

Every tile has the same size, so tiles from different images stack into one batch. Tiles stay inside the
image: the last tile of a row or column is shifted back to end at the border rather than hanging over it.
A tile's own edge at the image border then sees the same zero padding as the whole frame does, and its
inner edges are cropped by at least the receptive field radius, so the kept pixels are exact.

Only an image shorter than one tile along an axis needs padding. We pad with zeros and mask every
activation outside the image back to zero (see `DnCNN.forward`). Reflect or replicate padding would feed the
border pixels invented context that the whole-frame network never sees, changing the output near the border.
"""

from dataclasses import dataclass

from pixtools_denoise.model import RECEPTIVE_FIELD_RADIUS


@dataclass(frozen=True, slots=True)
class Tile:
    """A `size` x `size` window at (top, left) and the image rows and columns whose output it provides."""

    top: int
    left: int
    size: int
    height: int  # rows of real image inside the window; less than `size` only for a short image
    width: int
    keep_top: int  # kept region, in image coordinates
    keep_bottom: int
    keep_left: int
    keep_right: int

    @property
    def padded(self) -> bool:
        """Whether part of the window lies outside the image and must be masked."""
        return self.height < self.size or self.width < self.size


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    length: int
    keep_start: int
    keep_end: int


def plan_tiles(height: int, width: int, *, tile_size: int, margin: int) -> list[Tile]:
    """Cover a `height` x `width` image with tiles whose kept regions partition it, row by row."""
    check_tiling(tile_size=tile_size, margin=margin)
    if height < 1 or width < 1:
        raise ValueError(f"cannot tile an empty image of {height}x{width}")
    return [
        Tile(
            top=row.start,
            left=column.start,
            size=tile_size,
            height=row.length,
            width=column.length,
            keep_top=row.keep_start,
            keep_bottom=row.keep_end,
            keep_left=column.keep_start,
            keep_right=column.keep_end,
        )
        for row in _spans(height, tile_size, margin)
        for column in _spans(width, tile_size, margin)
    ]


def check_tiling(*, tile_size: int, margin: int) -> None:
    """Refuse a margin below the receptive field radius, or a tile too small to keep anything."""
    if margin < RECEPTIVE_FIELD_RADIUS:
        raise ValueError(f"margin must be at least the receptive field radius {RECEPTIVE_FIELD_RADIUS}, got {margin}")
    if tile_size <= 2 * margin:
        raise ValueError(f"tile_size must exceed twice the margin ({2 * margin}), got {tile_size}")


def _spans(length: int, tile_size: int, margin: int) -> list[_Span]:
    """Windows along one axis; each keeps its centre, the first and last also keep out to the image border."""
    if length <= tile_size:
        return [_Span(start=0, length=length, keep_start=0, keep_end=length)]
    stride = tile_size - 2 * margin
    starts = [*range(0, length - tile_size, stride), length - tile_size]
    spans = []
    keep_start = 0
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        # The shifted last window overlaps its neighbour more than usual; it keeps only what is left,
        # which still lies at least `margin` inside its own start.
        keep_end = length if last else start + tile_size - margin
        spans.append(_Span(start=start, length=tile_size, keep_start=keep_start, keep_end=keep_end))
        keep_start = keep_end
    return spans
