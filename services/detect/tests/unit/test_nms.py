"""NMS and greedy NMM: class-aware, IoU or IoS, and exactly the greedy answer a box-by-box loop gives."""

import pytest
import torch

from pixtools_detect.nms import Metric, greedy_nmm, nms, pairwise_overlap

BIG = [0.0, 0.0, 100.0, 100.0]
INSIDE = [10.0, 10.0, 50.0, 50.0]  # IoU with BIG 0.16, IoS 1.0


def _boxes(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows)


def test_overlap_metrics() -> None:
    overlap_iou = pairwise_overlap(_boxes(BIG), _boxes(INSIDE), "iou")
    overlap_ios = pairwise_overlap(_boxes(BIG), _boxes(INSIDE), "ios")
    assert overlap_iou.item() == pytest.approx(0.16)
    assert overlap_ios.item() == pytest.approx(1.0)


def test_nms_with_iou_keeps_a_box_nested_in_another_but_ios_drops_it() -> None:
    boxes, scores, groups = _boxes(BIG, INSIDE), torch.tensor([0.9, 0.8]), torch.tensor([0, 0])
    assert nms(boxes, scores, groups, threshold=0.5, metric="iou").tolist() == [0, 1]
    assert nms(boxes, scores, groups, threshold=0.5, metric="ios").tolist() == [0]


def test_nms_is_class_aware() -> None:
    boxes, scores = _boxes(BIG, BIG), torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, torch.tensor([0, 1]), threshold=0.5).tolist() == [0, 1]
    assert nms(boxes, scores, torch.tensor([1, 1]), threshold=0.5).tolist() == [0]


def test_nms_returns_best_score_first() -> None:
    boxes = _boxes([0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110])
    assert nms(boxes, torch.tensor([0.2, 0.9, 0.5]), torch.zeros(3, dtype=torch.long), threshold=0.5).tolist() == [
        1,
        2,
        0,
    ]


def test_a_suppressed_box_cannot_suppress_others() -> None:
    # A overlaps B, B overlaps C, A does not reach C: greedy NMS keeps A and C.
    boxes = _boxes([0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10])
    kept = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3, dtype=torch.long), threshold=0.3)
    assert kept.tolist() == [0, 2]


def test_greedy_nmm_grows_the_kept_box_over_what_it_absorbs() -> None:
    left_half, right_half = [0.0, 0.0, 60.0, 100.0], [40.0, 0.0, 100.0, 100.0]
    kept, merged = greedy_nmm(
        _boxes(left_half, right_half), torch.tensor([0.7, 0.9]), torch.tensor([3, 3]), threshold=0.1, metric="iou"
    )
    assert kept.tolist() == [1]
    assert merged.tolist() == [BIG]


def test_greedy_nmm_with_ios_absorbs_a_fragment_iou_would_keep() -> None:
    boxes, scores, groups = _boxes(BIG, INSIDE), torch.tensor([0.9, 0.8]), torch.tensor([0, 0])
    assert greedy_nmm(boxes, scores, groups, threshold=0.5, metric="iou")[0].tolist() == [0, 1]
    kept, merged = greedy_nmm(boxes, scores, groups, threshold=0.5, metric="ios")
    assert kept.tolist() == [0]
    assert merged.tolist() == [BIG]


def test_greedy_nmm_never_merges_across_classes() -> None:
    kept, _ = greedy_nmm(_boxes(BIG, INSIDE), torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), threshold=0.1)
    assert kept.tolist() == [0, 1]


def test_empty_inputs() -> None:
    empty = torch.zeros((0, 4))
    assert nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), threshold=0.5).numel() == 0
    kept, merged = greedy_nmm(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), threshold=0.5)
    assert kept.numel() == 0
    assert merged.shape == (0, 4)


def _loop_greedy(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float, metric: Metric):
    """The textbook box-by-box greedy loop, as the reference."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i].item())
    overlaps = pairwise_overlap(boxes, boxes, metric)
    kept: list[int] = []
    members: dict[int, list[int]] = {}
    removed: set[int] = set()
    for i in order:
        if i in removed:
            continue
        kept.append(i)
        members[i] = [i]
        for j in order:
            if j not in removed and j != i and j not in kept and groups[j] == groups[i] and overlaps[i, j] > threshold:
                removed.add(j)
                members[i].append(j)
    return kept, members


@pytest.mark.parametrize("metric", ["iou", "ios"])
@pytest.mark.parametrize("seed", range(5))
def test_matches_the_box_by_box_greedy_loop_on_random_clutter(metric: Metric, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(150, 2, generator=generator) * 300
    boxes = torch.cat([corners, corners + 20 + torch.rand(150, 2, generator=generator) * 60], dim=1)
    scores = torch.rand(150, generator=generator)
    groups = torch.randint(0, 3, (150,), generator=generator)
    expected, members = _loop_greedy(boxes, scores, groups, 0.4, metric)
    assert nms(boxes, scores, groups, threshold=0.4, metric=metric).tolist() == expected
    kept, merged = greedy_nmm(boxes, scores, groups, threshold=0.4, metric=metric)
    assert kept.tolist() == expected
    for index, box in zip(kept.tolist(), merged, strict=True):
        group = boxes[members[index]]
        assert box.tolist() == [*group[:, :2].min(0).values.tolist(), *group[:, 2:].max(0).values.tolist()]
