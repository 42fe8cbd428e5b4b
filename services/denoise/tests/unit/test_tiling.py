import numpy as np
import pytest

from pixtools_denoise.model import RECEPTIVE_FIELD_RADIUS
from pixtools_denoise.tiling import plan_tiles, window_shape

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
        assert tile.window == (128, 128)
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


@pytest.mark.parametrize(("height", "width"), [(1, 60000), (60000, 1), (3, 100_000), (255, 9000), (40, 40)])
def test_a_thin_image_costs_about_its_own_pixels(height: int, width: int) -> None:
    tiles = plan_tiles(height, width, tile_size=512, margin=20)
    processed = sum(tile.window_height * tile.window_width for tile in tiles)
    assert not any(tile.padded for tile in tiles)
    assert all(tile.window_height * tile.window_width <= 512 * 512 for tile in tiles)
    assert processed <= 1.1 * height * width


def test_a_strip_is_one_window_of_its_own_shape_when_it_holds_less_than_a_tile() -> None:
    [tile] = plan_tiles(1, 60000, tile_size=512, margin=20)
    assert (tile.window, tile.keep_right, tile.keep_bottom) == ((1, 60000), 60000, 1)
    [tile] = plan_tiles(60000, 1, tile_size=512, margin=20)
    assert tile.window == (60000, 1)


def test_windows_stay_square_tiles_unless_the_image_is_thinner_than_half_a_tile() -> None:
    assert window_shape(300, 90, tile_size=128, margin=20) == (128, 128)  # 90 >= 64: padded, batches with others
    # At most 128 * 128 // 63 = 260 columns, so 23 windows share the 4960 kept columns: 216 each, plus 2 x 20.
    assert window_shape(63, 5000, tile_size=128, margin=20) == (63, 256)
    assert window_shape(5000, 10, tile_size=128, margin=20) == (1280, 10)
    assert window_shape(20, 30, tile_size=128, margin=20) == (20, 30)
