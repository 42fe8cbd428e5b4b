"""The mosaic benchmark's matching, and its target: sliced recall at least twice direct recall on 4x4 mosaics."""

from pathlib import Path

import pytest

from pixtools_detect import Detection, TorchDetector
from pixtools_detect.evaluation import evaluate_mosaics, match


def _person(x: float, score: float = 0.9, class_id: int = 0) -> Detection:
    return Detection(xyxy=(x, 0.0, x + 10.0, 10.0), score=score, class_id=class_id, class_name="any")


def test_matching_is_one_to_one_same_class_at_iou_half() -> None:
    references = [_person(0), _person(100)]
    predictions = [_person(0), _person(1, score=0.5), _person(100, class_id=2), _person(104)]
    scores = match(predictions, references)
    # (0) matches; (1) overlaps an already-taken reference; class 2 never matches; (104) has IoU 6/14 < 0.5.
    assert (scores.matched, scores.recall, scores.precision) == (1, 0.5, 0.25)


@pytest.mark.slow
async def test_sliced_recall_is_at_least_twice_direct_on_4x4_mosaics(detector: TorchDetector, coco_dir: Path) -> None:
    report = await evaluate_mosaics(detector, coco_dir, grid=4)
    assert report.mosaics == 3
    assert report.direct.references > 100
    assert report.sliced.recall >= 2 * report.direct.recall
