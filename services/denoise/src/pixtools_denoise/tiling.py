"""Split an image into overlapping tiles whose kept centres give exactly the whole-frame result.

Tiles of ordinary images are `tile_size` squares, so tiles from different images stack into one batch.
Tiles stay inside the image: the last tile of a row or column is shifted back to end at the border rather
than hanging over it. A tile's own edge at the image border then sees the same zero padding as the whole
frame does, and its inner edges are cropped by at least the receptive field radius, so the kept pixels are
exact.

An image shorter than one tile along an axis is padded to the tile with zeros, and every activation outside
the image is masked back to zero (see `DnCNN.forward`). Reflect or replicate padding would feed the border
pixels invented context that the whole-frame network never sees, changing the output near the border.

A thin image, shorter than half a tile along an axis, is not padded: its windows take the image's own length
along that axis and grow along the other to about one tile's pixels. A 1 x 60000 strip is then one window
of 60000 pixels instead of 128 padded tiles of 262144, so what denoising costs follows the real pixels.
"""

from dataclasses import dataclass

from pixtools_denoise.model import RECEPTIVE_FIELD_RADIUS


@dataclass(frozen=True, slots=True)
class Tile:
    """A `window_height` x `window_width` window at (top, left) and the image pixels whose output it provides."""

    top: int
    left: int
    window_height: int
    window_width: int
    height: int  # rows of real image inside the window; less than `window_height` only for a short image
    width: int
    keep_top: int  # kept region, in image coordinates
    keep_bottom: int
    keep_left: int
    keep_right: int

    @property
    def padded(self) -> bool:
        """Whether part of the window lies outside the image and must be masked."""
        return self.height < self.window_height or self.width < self.window_width

    @property
    def window(self) -> tuple[int, int]:
        """(rows, columns) of the window: tiles of one window shape share a forward pass."""
        return self.window_height, self.window_width


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
    window_height, window_width = window_shape(height, width, tile_size=tile_size, margin=margin)
    return [
        Tile(
            top=row.start,
            left=column.start,
            window_height=window_height,
            window_width=window_width,
            height=row.length,
            width=column.length,
            keep_top=row.keep_start,
            keep_bottom=row.keep_end,
            keep_left=column.keep_start,
            keep_right=column.keep_end,
        )
        for row in _spans(height, window_height, margin)
        for column in _spans(width, window_width, margin)
    ]


def window_shape(height: int, width: int, *, tile_size: int, margin: int) -> tuple[int, int]:
    """The (rows, columns) of every window over an image: a tile, or, for a thin image, a strip of about a tile.

    Along an axis shorter than half a tile the window is exactly that long, and along the other it holds at
    most one tile's pixels, cut so that its windows share the length evenly: a strip costs its own pixels.
    """
    pixels = tile_size * tile_size
    thin_rows, thin_columns = height < tile_size // 2, width < tile_size // 2
    if thin_rows and thin_columns:
        return height, width
    if thin_rows:
        return height, _even_window(width, max(tile_size, pixels // height), margin)
    if thin_columns:
        return _even_window(height, max(tile_size, pixels // width), margin), width
    return tile_size, tile_size


def _even_window(length: int, longest: int, margin: int) -> int:
    """The shortest window, at most `longest`, whose overlapping windows cover `length` in as few as possible."""
    if length <= longest:
        return length
    kept = longest - 2 * margin
    windows = -(-(length - 2 * margin) // kept)
    return -(-(length - 2 * margin) // windows) + 2 * margin


def check_tiling(*, tile_size: int, margin: int) -> None:
    """Refuse a margin below the receptive field radius, or a tile too small to keep anything."""
    if margin < RECEPTIVE_FIELD_RADIUS:
        raise ValueError(f"margin must be at least the receptive field radius {RECEPTIVE_FIELD_RADIUS}, got {margin}")
    if tile_size <= 2 * margin:
        raise ValueError(f"tile_size must exceed twice the margin ({2 * margin}), got {tile_size}")


def _spans(length: int, window: int, margin: int) -> list[_Span]:
    """Windows along one axis; each keeps its centre, the first and last also keep out to the image border."""
    if length <= window:
        return [_Span(start=0, length=length, keep_start=0, keep_end=length)]
    stride = window - 2 * margin
    starts = [*range(0, length - window, stride), length - window]
    spans = []
    keep_start = 0
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        # The shifted last window overlaps its neighbour more than usual; it keeps only what is left,
        # which still lies at least `margin` inside its own start.
        keep_end = length if last else start + window - margin
        spans.append(_Span(start=start, length=window, keep_start=keep_start, keep_end=keep_end))
        keep_start = keep_end
    return spans
