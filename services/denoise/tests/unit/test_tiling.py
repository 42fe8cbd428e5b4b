import numpy as np
import pytest

from pixtools_denoise.model import RECEPTIVE_FIELD_RADIUS
from pixtools_denoise.tiling import plan_tiles

SIZES = [1, 19, 63, 64, 65, 100, 127, 128, 129, 216, 333, 517, 1000]


@pytest.mark.parametrize("height", SIZES)
def test_kept_regions_cover_every_pixel_exactly_once(height: int) -> None:
    for width in SIZES:
        coverage = np.zeros((height, width), dtype=np.int32)
        for tile in plan_tiles(height, width, tile_size=128, margin=20):
            coverage[tile.keep_top : tile.keep_bottom, tile.keep_left : tile.keep_right] += 1
        assert (coverage == 1).all(), (height, width)


def test_tiles_have_one_fixed_size_and_lie_inside_the_image_unless_it_is_shorter() -> None:
    for tile in plan_tiles(333, 90, tile_size=128, margin=20):
        assert tile.size == 128
        assert tile.top >= 0
        assert tile.top + tile.height <= 333
        assert tile.height == 128  # 333 rows need several whole windows
        assert tile.left == 0
        assert tile.width == 90  # 90 columns fit in one padded window
        assert tile.padded


def test_kept_pixels_have_a_full_margin_of_context_except_at_the_image_border() -> None:
    height, width, margin = 517, 333, 20
    for tile in plan_tiles(height, width, tile_size=128, margin=margin):
        assert tile.keep_top == 0 or tile.keep_top - tile.top >= margin
        assert tile.keep_left == 0 or tile.keep_left - tile.left >= margin
        assert tile.keep_bottom == height or tile.top + tile.height - tile.keep_bottom >= margin
        assert tile.keep_right == width or tile.left + tile.width - tile.keep_right >= margin


def test_margin_below_the_receptive_field_radius_is_refused() -> None:
    with pytest.raises(ValueError, match="receptive field"):
        plan_tiles(100, 100, tile_size=128, margin=RECEPTIVE_FIELD_RADIUS - 1)


def test_tile_that_cannot_keep_anything_is_refused() -> None:
    with pytest.raises(ValueError, match="twice the margin"):
        plan_tiles(100, 100, tile_size=40, margin=20)
