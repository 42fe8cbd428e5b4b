"""The mosaic benchmark: k x k photographs tiled into one canvas, where sliced inference must find the small objects."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixtools_contracts import DetectParams
from pixtools_detect.adapters.torch_model import TorchDetector
from pixtools_detect.nms import pairwise_overlap
from pixtools_detect.preprocess import PAD_VALUE
from pixtools_detect.results import Detection

CELL = 640  # coco-sample photographs are at most 640 px on a side, so each sits in its cell at full resolution
REFERENCE_SCORE = 0.5
MATCH_IOU = 0.5


@dataclass(frozen=True)
class Mosaic:
    """A canvas of k x k photographs and the reference objects in canvas pixels."""

    canvas: np.ndarray
    references: list[Detection]


@dataclass(frozen=True)
class Scores:
    """Matches against the references at IoU 0.5, same class."""

    predictions: int
    references: int
    matched: int

    @property
    def recall(self) -> float:
        """Share of reference objects found."""
        return self.matched / self.references if self.references else 0.0

    @property
    def precision(self) -> float:
        """Share of predictions that are reference objects."""
        return self.matched / self.predictions if self.predictions else 0.0


def list_pictures(data_dir: Path) -> list[Path]:
    """JPEG and PNG files of a folder, sorted by name so mosaics are reproducible."""
    return sorted(path for path in data_dir.iterdir() if path.suffix.lower() in {".jpg", ".jpeg", ".png"})


def load_rgb(path: Path) -> np.ndarray:
    """Decode a picture as RGB uint8 (H, W, 3)."""
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def shifted(detection: Detection, dx: float, dy: float) -> Detection:
    """The same detection in a picture pasted at (dx, dy)."""
    x1, y1, x2, y2 = detection.xyxy
    return detection.model_copy(update={"xyxy": (x1 + dx, y1 + dy, x2 + dx, y2 + dy)})


async def build_mosaic(detector: TorchDetector, pictures: Sequence[np.ndarray], grid: int) -> Mosaic:
    """Paste pictures into 640 px cells; the references are each picture's confident full-resolution detections."""
    canvas = np.full((grid * CELL, grid * CELL, 3), int(PAD_VALUE), dtype=np.uint8)
    references: list[Detection] = []
    reference_params = DetectParams(confidence=REFERENCE_SCORE, sahi=False)
    for index, picture in enumerate(pictures[: grid * grid]):
        scale = min(1.0, CELL / max(picture.shape[:2]))
        if scale < 1.0:
            size = (int(picture.shape[1] * scale), int(picture.shape[0] * scale))
            picture = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BILINEAR))
        found = await detector.detect(picture, reference_params)
        row, column = divmod(index, grid)
        dy, dx = row * CELL, column * CELL
        canvas[dy : dy + picture.shape[0], dx : dx + picture.shape[1]] = picture
        references += [shifted(detection, dx, dy) for detection in found.detections]
    return Mosaic(canvas, references)


def match(predictions: Sequence[Detection], references: Sequence[Detection], iou: float = MATCH_IOU) -> Scores:
    """Greedy one-to-one matching, best prediction first, same class and IoU >= `iou`."""
    if not predictions or not references:
        return Scores(len(predictions), len(references), 0)
    overlaps = pairwise_overlap(
        torch.tensor([p.xyxy for p in predictions]), torch.tensor([r.xyxy for r in references]), "iou"
    )
    same_class = torch.tensor([[p.class_id == r.class_id for r in references] for p in predictions])
    overlaps = torch.where(same_class, overlaps, torch.zeros_like(overlaps))
    taken: set[int] = set()
    for index in sorted(range(len(predictions)), key=lambda i: -predictions[i].score):
        candidates = [(value, j) for j, value in enumerate(overlaps[index].tolist()) if j not in taken and value >= iou]
        if candidates:
            taken.add(max(candidates)[1])
    return Scores(len(predictions), len(references), len(taken))


@dataclass(frozen=True)
class MosaicReport:
    """Totals over every mosaic for direct and sliced inference."""

    grid: int
    mosaics: int
    confidence: float
    direct: Scores
    sliced: Scores

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON, with recall and precision spelled out."""
        summary: dict[str, object] = {"grid": self.grid, "mosaics": self.mosaics, "confidence": self.confidence}
        for name, scores in (("direct", self.direct), ("sliced", self.sliced)):
            summary[name] = {**asdict(scores), "recall": scores.recall, "precision": scores.precision}
        return summary


def _total(parts: Sequence[Scores]) -> Scores:
    return Scores(
        predictions=sum(s.predictions for s in parts),
        references=sum(s.references for s in parts),
        matched=sum(s.matched for s in parts),
    )


async def evaluate_mosaics(
    detector: TorchDetector, data_dir: Path, *, grid: int, confidence: float = 0.25
) -> MosaicReport:
    """Run direct and sliced inference (contract defaults otherwise) on every full mosaic the folder can fill."""
    paths = list_pictures(data_dir)
    if len(paths) < grid * grid:
        raise ValueError(f"{data_dir} has {len(paths)} pictures; a {grid}x{grid} mosaic needs {grid * grid}")
    direct_params = DetectParams(confidence=confidence, sahi=False)
    sliced_params = DetectParams(confidence=confidence)
    direct: list[Scores] = []
    sliced: list[Scores] = []
    for start in range(0, len(paths) - grid * grid + 1, grid * grid):
        mosaic = await build_mosaic(detector, [load_rgb(p) for p in paths[start : start + grid * grid]], grid)
        for params, results in ((direct_params, direct), (sliced_params, sliced)):
            found = await detector.detect(mosaic.canvas, params)
            results.append(match(found.detections, mosaic.references))
    return MosaicReport(grid, len(direct), confidence, _total(direct), _total(sliced))
