"""Combine the detections of every window of one image into one list, without counting an object twice."""

from collections.abc import Sequence
from typing import Literal

import torch

from pixtools_contracts import SahiParams
from pixtools_detect.inference import TileDetections
from pixtools_detect.nms import greedy_nmm, nms
from pixtools_detect.results import Detection
from pixtools_detect.slicing import Window

# The merge compares every pair of boxes; at sane confidences an image never comes near this many, and the
# cap keeps a near-zero confidence on a huge image from allocating a matrix of gigabytes.
_MAX_MERGE_CANDIDATES = 8192


def merge_windows(
    windows: Sequence[Window],
    tiles: Sequence[TileDetections],
    *,
    sahi: SahiParams | Literal[False],
    class_names: Sequence[str],
    max_detections: int,
) -> list[Detection]:
    """Shift each window's boxes into image pixels, merge across windows, and keep the best `max_detections`."""
    offsets = [torch.tensor([w.x0, w.y0, w.x0, w.y0], dtype=torch.float32) for w in windows]
    boxes = torch.cat([tile.boxes + offset for tile, offset in zip(tiles, offsets, strict=True)])
    scores = torch.cat([tile.scores for tile in tiles])
    class_ids = torch.cat([tile.class_ids for tile in tiles])
    if len(windows) > 1 and sahi is not False:
        if scores.numel() > _MAX_MERGE_CANDIDATES:
            best = scores.topk(_MAX_MERGE_CANDIDATES).indices
            boxes, scores, class_ids = boxes[best], scores[best], class_ids[best]
        if sahi.merge == "greedy_nmm":
            kept, boxes_kept = greedy_nmm(boxes, scores, class_ids, threshold=sahi.threshold, metric=sahi.metric)
        else:
            kept = nms(boxes, scores, class_ids, threshold=sahi.threshold, metric=sahi.metric)
            boxes_kept = boxes[kept]
        boxes, scores, class_ids = boxes_kept, scores[kept], class_ids[kept]
    order = torch.argsort(scores, descending=True, stable=True)[:max_detections]
    return [
        Detection(
            xyxy=(round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)),
            score=round(score, 4),
            class_id=class_id,
            class_name=class_names[class_id],
        )
        for (x1, y1, x2, y2), score, class_id in zip(
            boxes[order].tolist(), scores[order].tolist(), class_ids[order].tolist(), strict=True
        )
    ]
