"""Slice geometry: overlapping, full-size windows covering the image, and when slicing is skipped."""

import itertools

import numpy as np
import pytest

from pixtools_contracts import SahiParams
from pixtools_detect.slicing import Window, plan_windows, slice_starts, slice_windows


def test_starts_step_by_the_overlap_and_end_flush_with_the_border() -> None:
    starts = slice_starts(3000, 416, 0.2)
    assert starts[:3] == [0, 333, 666]
    assert starts[-1] == 3000 - 416
    assert len(starts) == 9
    assert all(later - earlier <= 333 for earlier, later in itertools.pairwise(starts))


@pytest.mark.parametrize(("width", "height"), [(3000, 2000), (417, 900), (1000, 416), (5000, 417)])
def test_windows_are_full_size_overlap_and_cover_every_pixel(width: int, height: int) -> None:
    windows = slice_windows(width, height, 416, 0.2)
    covered = np.zeros((height, width), dtype=bool)
    for window in windows:
        assert (window.width, window.height) == (min(416, width), min(416, height))
        assert window.x0 >= 0
        assert window.x1 <= width
        assert window.y0 >= 0
        assert window.y1 <= height
        covered[window.y0 : window.y1, window.x0 : window.x1] = True
    assert covered.all()


def test_neighbouring_slices_overlap_by_at_least_the_ratio() -> None:
    starts = slice_starts(2000, 416, 0.2)
    assert all(416 - (later - earlier) >= int(0.2 * 416) for earlier, later in itertools.pairwise(starts))


def test_a_3000x2000_image_gets_54_slices_plus_the_whole_frame() -> None:
    windows = plan_windows(3000, 2000, SahiParams())
    assert len(windows) == 9 * 6 + 1
    assert windows[-1] == Window(0, 0, 3000, 2000)


def test_full_image_pass_is_optional() -> None:
    assert Window(0, 0, 3000, 2000) not in plan_windows(3000, 2000, SahiParams(full_image=False))


@pytest.mark.parametrize(("width", "height"), [(416, 416), (300, 200), (416, 100)])
def test_images_no_larger_than_one_slice_skip_slicing(width: int, height: int) -> None:
    assert plan_windows(width, height, SahiParams()) == [Window(0, 0, width, height)]


def test_sahi_false_is_one_whole_frame_pass() -> None:
    assert plan_windows(3000, 2000, False) == [Window(0, 0, 3000, 2000)]


def test_a_strip_wider_than_a_slice_is_sliced_along_its_length_only() -> None:
    windows = plan_windows(1000, 300, SahiParams(full_image=False))
    assert {window.y0 for window in windows} == {0}
    assert {window.height for window in windows} == {300}
    assert len(windows) == 3


@pytest.mark.parametrize(("width", "height"), [(60000, 1), (1, 60000), (60000, 100), (150, 9000)])
def test_a_thin_image_is_covered_by_long_windows_of_about_one_slice_of_pixels(width: int, height: int) -> None:
    windows = plan_windows(width, height, SahiParams(full_image=False))
    covered = np.zeros((height, width), dtype=bool)
    for window in windows:
        assert window.width * window.height <= 416 * 416
        assert min(window.width, window.height) == min(width, height)
        covered[window.y0 : window.y1, window.x0 : window.x1] = True
    assert covered.all()
    assert len(windows) <= 1.3 * width * height / (416 * 416) + 1


def test_a_strip_holding_less_than_a_slice_of_pixels_is_one_whole_frame_pass() -> None:
    assert plan_windows(60000, 1, SahiParams()) == [Window(0, 0, 60000, 1)]
