"""One batched forward pass over tiles from any number of images, with per-tile decoding, filtering and NMS."""

from dataclasses import dataclass

import torch

from pixtools_detect.network import YoloxNetwork, anchor_grid, decode_boxes
from pixtools_detect.nms import nms
from pixtools_detect.preprocess import letterbox_batch
from pixtools_detect.slicing import Window

# YOLOX's own demo suppresses duplicates inside one forward pass at IoU 0.45; the request's merge settings only
# govern how slices are combined afterwards.
TILE_NMS_IOU = 0.45
# A 416x416 tile has 3549 anchors; at a near-zero confidence keeping only the best few hundred bounds NMS cost
# and memory without losing anything a real picture holds.
_PRE_NMS_TOP_K = 1000


@dataclass(frozen=True, eq=False)
class Tile:
    """One window of one image to infer, with that request's filters; `image` is the whole RGB uint8 (H, W, 3)."""

    image: torch.Tensor
    window: Window
    confidence: float
    class_ids: tuple[int, ...] | None
    max_detections: int


@dataclass(frozen=True)
class TileDetections:
    """Boxes (K, 4) xyxy in the tile's own pixels, scores (K,) and class ids (K,), on the CPU, best first."""

    boxes: torch.Tensor
    scores: torch.Tensor
    class_ids: torch.Tensor


class BatchInference:
    """Runs tiles through the network in one forward pass; callable from a worker thread only."""

    def __init__(self, network: YoloxNetwork, device: torch.device) -> None:
        self.network = network
        self.device = device
        self.module = network.module.to(device)
        # channels_last lets oneDNN and cuDNN pick their fast depthwise kernels (about 2x on CPU here).
        for parameter in self.module.parameters():
            if parameter.dim() == 4:
                parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)
        self.offsets, self.strides = anchor_grid(network.input_size, device)

    def _pictures(self, tiles: list[Tile]) -> list[torch.Tensor]:
        # Each distinct image crosses to the device once, however many of its slices share the batch.
        uploaded: dict[int, torch.Tensor] = {}
        pictures = []
        for tile in tiles:
            image = uploaded.get(id(tile.image))
            if image is None:
                image = uploaded[id(tile.image)] = tile.image.to(self.device)
            window = tile.window
            pictures.append(image[window.y0 : window.y1, window.x0 : window.x1])
        return pictures

    @torch.inference_mode()
    def __call__(self, tiles: list[Tile]) -> list[TileDetections]:
        """Infer a batch of tiles; the MicroBatcher calls this in its dedicated thread."""
        batch, ratios = letterbox_batch(self._pictures(tiles), self.network.input_size, self.device)
        raw = self.module(batch.contiguous(memory_format=torch.channels_last))
        boxes = decode_boxes(raw, self.offsets, self.strides)
        class_scores = raw[..., 5:] * raw[..., 4:5]
        selected = [
            self._select(tile, boxes[index], class_scores[index], ratio)
            for index, (tile, ratio) in enumerate(zip(tiles, ratios, strict=True))
        ]
        # One device-to-host copy for the whole batch instead of three per tile.
        counts = [len(scores) for _, scores, _ in selected]
        tile_boxes, scores, class_ids = (torch.cat(parts).cpu() for parts in zip(*selected, strict=True))
        return [
            TileDetections(*parts)
            for parts in zip(tile_boxes.split(counts), scores.split(counts), class_ids.split(counts), strict=True)
        ]

    def _select(
        self, tile: Tile, boxes: torch.Tensor, class_scores: torch.Tensor, ratio: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if tile.class_ids is not None:
            # Only the requested classes compete, so an anchor whose best class was filtered out can still count.
            class_scores = class_scores[:, list(tile.class_ids)]
        scores, columns = class_scores.max(dim=1)
        class_ids = columns if tile.class_ids is None else torch.tensor(tile.class_ids, device=self.device)[columns]
        candidates = torch.nonzero(scores >= tile.confidence).squeeze(1)
        if candidates.numel() > _PRE_NMS_TOP_K:
            candidates = candidates[scores[candidates].topk(_PRE_NMS_TOP_K).indices]
        boxes, scores, class_ids = boxes[candidates], scores[candidates], class_ids[candidates]
        kept = nms(boxes, scores, class_ids, threshold=TILE_NMS_IOU)[: tile.max_detections]
        limits = torch.tensor([tile.window.width, tile.window.height] * 2, device=self.device, dtype=boxes.dtype)
        tile_boxes = torch.minimum((boxes[kept] / ratio).clamp(min=0), limits)
        return tile_boxes, scores[kept], class_ids[kept]
