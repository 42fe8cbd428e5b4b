"""TorchDetector end to end on real pictures: direct and sliced paths, filters, errors, batching, the event loop."""

import asyncio
import json

import numpy as np
import pytest
import torch

from pixtools_contracts import DetectParams, SahiParams
from pixtools_detect import DetectionResult, TorchDetector, UnknownClassNames
from pixtools_detect.errors import TooManySlices
from pixtools_detect.inference import BatchInference, Tile
from pixtools_detect.slicing import Window


async def test_people_picture_counts_person(detector: TorchDetector, people_image: np.ndarray) -> None:
    result = await detector.detect(people_image, DetectParams())
    assert result.counts["person"] >= 1
    assert sum(result.counts.values()) == len(result.detections)
    assert result.model_id == "yolox_nano"
    assert result.model_sha256 == detector.network.sha256
    assert len(result.model_sha256) == 64


async def test_boxes_are_in_original_pixels_best_first(detector: TorchDetector, people_image: np.ndarray) -> None:
    result = await detector.detect(people_image, DetectParams(sahi=False))
    height, width = people_image.shape[:2]
    assert (result.width, result.height) == (width, height)
    for detection in result.detections:
        x1, y1, x2, y2 = detection.xyxy
        assert 0 <= x1 < x2 <= width
        assert 0 <= y1 < y2 <= height
        assert detection.score >= 0.25
        assert detection.class_name == detector.class_names[detection.class_id]
    scores = [detection.score for detection in result.detections]
    assert scores == sorted(scores, reverse=True)


async def test_direct_path_is_one_forward_pass_even_on_a_large_image(detector: TorchDetector) -> None:
    large = np.zeros((1200, 1800, 3), dtype=np.uint8)
    assert (await detector.detect(large, DetectParams(sahi=False))).slices == 1
    assert (await detector.detect(large, DetectParams())).slices == 4 * 6 + 1


async def test_a_thin_strip_costs_passes_for_its_own_pixels_not_a_slice_per_step(detector: TorchDetector) -> None:
    assert (await detector.detect(np.zeros((1, 60000, 3), dtype=np.uint8), DetectParams())).slices == 1
    assert (await detector.detect(np.zeros((60000, 1, 3), dtype=np.uint8), DetectParams())).slices == 1
    # A window of 100 rows holds a 416 px slice's pixels in 1730 columns; stepping 1384 (20% overlap), 60000 columns
    # take 44 windows, plus the whole frame, where 416 px square slices would take 180.
    assert (await detector.detect(np.zeros((100, 60000, 3), dtype=np.uint8), DetectParams())).slices == 44 + 1


async def test_an_image_needing_more_slices_than_allowed_is_refused_before_any_pass(network) -> None:
    detector = TorchDetector(network, device="cpu", max_slices=10)
    async with detector:
        with pytest.raises(TooManySlices, match="needs 55 slices") as refused:
            await detector.detect(np.zeros((2000, 3000, 3), dtype=np.uint8), DetectParams())
    assert refused.value.code == "image.too_many_tiles"


async def test_image_no_larger_than_a_slice_skips_slicing(detector: TorchDetector, people_image) -> None:
    small = people_image[:400, :416]
    sliced = await detector.detect(small, DetectParams())
    direct = await detector.detect(small, DetectParams(sahi=False))
    assert sliced.slices == 1
    assert sliced.detections == direct.detections


async def test_class_filter_keeps_only_named_classes(detector: TorchDetector, people_image) -> None:
    everything = await detector.detect(people_image, DetectParams(sahi=False))
    assert set(everything.counts) - {"person"}, "the picture must have other classes for this test to mean anything"
    people = await detector.detect(people_image, DetectParams(sahi=False, classes=["person"]))
    assert set(people.counts) == {"person"}
    assert people.counts["person"] >= everything.counts["person"]


async def test_unknown_class_names_raise_and_list_valid_names(detector: TorchDetector, people_image) -> None:
    with pytest.raises(UnknownClassNames, match=r"\['persn'\].*valid names: person, bicycle, car"):
        await detector.detect(people_image, DetectParams(classes=["person", "persn"]))


async def test_confidence_and_max_detections_are_respected(detector: TorchDetector, people_image) -> None:
    result = await detector.detect(people_image, DetectParams(confidence=0.05, max_detections=3))
    assert len(result.detections) == 3
    confident = await detector.detect(people_image, DetectParams(confidence=0.6))
    assert all(detection.score >= 0.6 for detection in confident.detections)


async def test_result_serialises_to_plain_json(detector: TorchDetector, people_image) -> None:
    result = await detector.detect(people_image, DetectParams(sahi=False))
    payload = result.to_json()
    assert json.loads(json.dumps(payload)) == payload
    assert set(payload) == {"detections", "counts", "model_id", "model_sha256", "width", "height", "slices"}
    assert set(result.model_dump(mode="json")["detections"][0]) == {"xyxy", "score", "class_id", "class_name"}
    assert DetectionResult.model_validate(payload) == result


async def test_concurrent_images_get_the_same_answers_as_one_at_a_time(detector: TorchDetector, people_image) -> None:
    flipped = np.ascontiguousarray(people_image[:, ::-1])
    alone = [await detector.detect(image, DetectParams()) for image in (people_image, flipped)]
    together = await asyncio.gather(*(detector.detect(image, DetectParams()) for image in (people_image, flipped)))
    assert [r.counts for r in together] == [r.counts for r in alone]
    for shared, single in zip(together, alone, strict=True):
        boxes = torch.tensor([d.xyxy for d in shared.detections]) - torch.tensor([d.xyxy for d in single.detections])
        assert boxes.abs().max() < 0.05


def test_tiles_of_different_images_and_filters_share_a_batch_without_mixing(network, people_image) -> None:
    inference = BatchInference(network, torch.device("cpu"))
    image = torch.from_numpy(people_image.copy())
    other = torch.zeros((300, 500, 3), dtype=torch.uint8)
    tiles = [
        Tile(image, Window(0, 0, 416, 416), 0.25, None, 300),
        Tile(other, Window(0, 0, 500, 300), 0.25, None, 300),
        Tile(image, Window(100, 50, 516, 466), 0.3, (0,), 300),
    ]
    together = inference(tiles)
    for tile, batched in zip(tiles, together, strict=True):
        (single,) = inference([tile])
        assert torch.allclose(batched.boxes, single.boxes, atol=1e-2)
        assert torch.equal(batched.class_ids, single.class_ids)
    assert together[1].boxes.shape[0] == 0 or together[1].scores.max() < 0.5
    assert set(together[2].class_ids.tolist()) <= {0}


async def test_inference_leaves_the_event_loop_free(detector: TorchDetector) -> None:
    ticks = 0
    busy = True

    async def tick() -> None:
        nonlocal ticks
        while busy:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.create_task(tick())
    await detector.detect(np.full((1000, 1400, 3), 90, dtype=np.uint8), DetectParams(sahi=SahiParams(overlap=0.5)))
    busy = False
    await ticker
    assert ticks >= 10


async def test_wrong_array_shape_is_refused(detector: TorchDetector) -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        await detector.detect(np.zeros((10, 10), dtype=np.uint8), DetectParams())
