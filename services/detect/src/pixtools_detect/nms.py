"""Class-aware NMS and greedy non-maximum merging (SAHI's GREEDYNMM), in torch, with an IoU or IoS metric."""

from typing import Literal

import torch

Metric = Literal["iou", "ios"]

try:  # torchvision is optional: CUDA deployments usually have it, the CPU-only environment here has none.
    from torchvision.ops import batched_nms as _torchvision_batched_nms
except ImportError:  # pragma: no cover - depends on the environment
    _torchvision_batched_nms = None

# Rows of the pairwise matrix computed at once, so its float intermediate stays small even for thousands of boxes.
_ROW_CHUNK = 1024


def pairwise_overlap(first: torch.Tensor, second: torch.Tensor, metric: Metric) -> torch.Tensor:
    """Overlap of every box in `first` (N, 4) with every box in `second` (M, 4), xyxy: IoU or IoS, shape (N, M)."""
    top_left = torch.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = torch.minimum(first[:, None, 2:], second[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area_first = (first[:, 2:] - first[:, :2]).clamp(min=0).prod(dim=1)[:, None]
    area_second = (second[:, 2:] - second[:, :2]).clamp(min=0).prod(dim=1)[None, :]
    union_or_smaller = (
        area_first + area_second - intersection if metric == "iou" else torch.minimum(area_first, area_second)
    )
    return intersection / union_or_smaller.clamp(min=1e-9)


def _overlapping_later_boxes(
    boxes: torch.Tensor, groups: torch.Tensor, threshold: float, metric: Metric
) -> torch.Tensor:
    """Boolean (N, N): entry [i, j] is true when j comes after i, is in the same group and overlaps above threshold."""
    count = boxes.shape[0]
    later = torch.zeros((count, count), dtype=torch.bool, device=boxes.device)
    for start in range(0, count, _ROW_CHUNK):
        rows = slice(start, start + _ROW_CHUNK)
        over = pairwise_overlap(boxes[rows], boxes, metric) > threshold
        later[rows] = over & (groups[rows][:, None] == groups[None, :])
    return torch.triu(later, diagonal=1)


def _greedy_suppression(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float, metric: Metric
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort by score; return the order, which sorted boxes survive, and the survivor absorbing each sorted box."""
    order = torch.argsort(scores, descending=True, stable=True)
    overlaps = _overlapping_later_boxes(boxes[order], groups[order], threshold, metric)
    # Greedy NMS keeps box i when no kept, better box overlaps it. Because overlaps only point forward, iterating
    # that rule from "keep everything" settles on exactly the greedy answer within (longest suppression chain + 1)
    # rounds, each a whole-matrix op, instead of one Python step per box.
    keep = torch.ones(order.shape[0], dtype=torch.bool, device=boxes.device)
    for _ in range(order.shape[0] + 1):
        settled = ~(overlaps & keep[:, None]).any(dim=0)
        if torch.equal(settled, keep):
            break
        keep = settled
    # A suppressed box belongs to the first (best) kept box that overlaps it, as in SAHI's greedy merge.
    absorbed_by = (overlaps & keep[:, None]).to(torch.uint8).argmax(dim=0)
    positions = torch.arange(order.shape[0], device=boxes.device)
    owner = torch.where(keep, positions, absorbed_by)
    return order, keep, owner


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, *, threshold: float, metric: Metric = "iou"
) -> torch.Tensor:
    """Indices of the boxes kept by class-aware (per `groups`) greedy NMS, best score first."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if metric == "iou" and _torchvision_batched_nms is not None:
        return _torchvision_batched_nms(boxes, scores, groups, threshold)
    order, keep, _ = _greedy_suppression(boxes, scores, groups, threshold, metric)
    return order[keep]


def greedy_nmm(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, *, threshold: float, metric: Metric = "ios"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy non-maximum merging: kept indices (best first) and each kept box grown to cover the boxes it absorbed."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), boxes[:0]
    order, keep, owner = _greedy_suppression(boxes, scores, groups, threshold, metric)
    sorted_boxes = boxes[order]
    merged = sorted_boxes.clone()
    corners = owner[:, None].expand(-1, 2)
    merged[:, :2] = merged[:, :2].scatter_reduce(0, corners, sorted_boxes[:, :2], reduce="amin")
    merged[:, 2:] = merged[:, 2:].scatter_reduce(0, corners, sorted_boxes[:, 2:], reduce="amax")
    return order[keep], merged[keep]
