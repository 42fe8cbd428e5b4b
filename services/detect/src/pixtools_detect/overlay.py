"""Draw detections onto a copy of the image: boxes and 'class score' labels."""

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pixtools_detect.results import Detection

# Twelve well-separated hues, picked by class id, so the same class keeps its colour across images.
_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)


def draw_overlay(image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A new RGB uint8 image with each detection's box and label drawn on; the input is left untouched."""
    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    # Line and text scale with the image so labels stay legible on large photos and small on thumbnails.
    line = max(1, round(min(canvas.size) / 300))
    font = ImageFont.load_default(size=max(10, round(min(canvas.size) / 50)))
    for detection in detections:
        colour = _PALETTE[detection.class_id % len(_PALETTE)]
        x1, y1, x2, y2 = detection.xyxy
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=colour, width=line)
        label = f"{detection.class_name} {detection.score:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), label, font=font)
        # Labels sit above the box, or just inside it when the box touches the top edge.
        shift = bottom - top if y1 >= bottom - top else 0
        draw.rectangle((left, top - shift, right, bottom - shift), fill=colour)
        draw.text((x1, y1 - shift), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)
