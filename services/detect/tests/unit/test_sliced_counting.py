"""Objects cut by slice borders are counted once: a grid of identical people keeps its true count."""

import numpy as np

from pixtools_contracts import DetectParams, SahiParams
from pixtools_detect import TorchDetector
from pixtools_detect.slicing import plan_windows

COLUMNS, ROWS = 8, 5
TRUE_COUNT = COLUMNS * ROWS


def _crowd(person: np.ndarray) -> np.ndarray:
    height, width = person.shape[:2]
    pitch_x, pitch_y = width + 50, height + 40
    canvas = np.full((ROWS * pitch_y + 40, COLUMNS * pitch_x + 40, 3), 114, dtype=np.uint8)
    for row in range(ROWS):
        for column in range(COLUMNS):
            y, x = 20 + row * pitch_y, 20 + column * pitch_x
            canvas[y : y + height, x : x + width] = person
    return canvas


def _people_cut_by_a_slice_edge(person: np.ndarray, canvas: np.ndarray) -> int:
    """People that some slice sees only part of."""
    height, width = person.shape[:2]
    windows = plan_windows(canvas.shape[1], canvas.shape[0], SahiParams(full_image=False))
    cut = 0
    for row in range(ROWS):
        for column in range(COLUMNS):
            x0, y0 = 20 + column * (width + 50), 20 + row * (height + 40)
            x1, y1 = x0 + width, y0 + height
            touching = [w for w in windows if w.x0 < x1 and x0 < w.x1 and w.y0 < y1 and y0 < w.y1]
            cut += any(not (w.x0 <= x0 and x1 <= w.x1 and w.y0 <= y0 and y1 <= w.y1) for w in touching)
    return cut


async def test_grid_of_identical_people_is_counted_once_each(detector: TorchDetector, person_crop) -> None:
    canvas = _crowd(person_crop)
    assert _people_cut_by_a_slice_edge(person_crop, canvas) >= TRUE_COUNT // 2, "the grid must straddle slice edges"
    result = await detector.detect(canvas, DetectParams(classes=["person"]))
    assert result.slices > 1
    assert abs(result.counts["person"] - TRUE_COUNT) <= TRUE_COUNT // 10


async def test_without_merging_the_same_grid_is_overcounted(detector: TorchDetector, person_crop) -> None:
    # Proves the grid above really has people split between slices: with merging off they count several times.
    unmerged = SahiParams(merge="nms", threshold=1.0)
    result = await detector.detect(_crowd(person_crop), DetectParams(classes=["person"], sahi=unmerged))
    assert result.counts["person"] > 1.5 * TRUE_COUNT


async def test_plain_nms_with_ios_also_counts_once(detector: TorchDetector, person_crop) -> None:
    sahi = SahiParams(merge="nms", metric="ios")
    result = await detector.detect(_crowd(person_crop), DetectParams(classes=["person"], sahi=sahi))
    assert abs(result.counts["person"] - TRUE_COUNT) <= TRUE_COUNT // 10
