"""The overlay: a new image with boxes and labels, that encodes and decodes as a normal picture."""

import io

import numpy as np
from PIL import Image

from pixtools_contracts import DetectParams
from pixtools_detect import Detection, TorchDetector, draw_overlay


async def test_overlay_of_real_detections_encodes_and_decodes(detector: TorchDetector, people_image) -> None:
    result = await detector.detect(people_image, DetectParams(overlay=True))
    original = people_image.copy()
    overlay = draw_overlay(people_image, result.detections)
    assert np.array_equal(people_image, original), "the input must be left untouched"
    assert overlay.shape == people_image.shape
    assert overlay.dtype == np.uint8
    assert not np.array_equal(overlay, people_image)
    buffer = io.BytesIO()
    Image.fromarray(overlay).save(buffer, "PNG")
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert np.array_equal(decoded, overlay)


def test_box_edges_are_drawn_where_the_detection_is() -> None:
    blank = np.zeros((200, 300, 3), dtype=np.uint8)
    box = Detection(xyxy=(50.0, 80.0, 150.0, 180.0), score=0.9, class_id=0, class_name="person")
    overlay = draw_overlay(blank, [box])
    assert overlay[130, 50].any()
    assert overlay[179, 100].any()
    assert not overlay[130, 100].any()  # the inside stays clear
    assert overlay[75, 52].any()  # the label sits above the box


def test_no_detections_gives_an_identical_copy() -> None:
    picture = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    overlay = draw_overlay(picture, [])
    assert np.array_equal(overlay, picture)
    assert overlay is not picture
