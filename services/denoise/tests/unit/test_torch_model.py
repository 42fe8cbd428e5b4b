import asyncio
from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client import REGISTRY

from pixtools_denoise import InferenceConfig, TorchDenoiser, UnsupportedImage
from pixtools_denoise.errors import TooManyTiles
from pixtools_denoise.model_files import Weights

WholeFrame = Callable[[np.ndarray], np.ndarray]

TOLERANCE = 1e-4


def random_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)


def expected_integers(whole_frame: WholeFrame, image: np.ndarray, scale: float) -> np.ndarray:
    """What the service documents for integer images: scale to [0, 1], denoise, clamp, round."""
    denoised = whole_frame((image / np.float32(scale)).astype(np.float32))
    return np.round(np.clip(denoised, 0.0, 1.0) * scale)


@pytest.mark.parametrize(
    ("height", "width", "tile_size"),
    [
        (333, 517, 192),  # odd size, several tiles along both axes
        (50, 70, 128),  # smaller than one tile
        (100, 300, 128),  # shorter than one tile along one axis only
        (2, 9000, 64),  # a strip: windows of about 2 x 2048, not padded tiles
        (700, 3, 64),  # a column: one window of its own shape
    ],
)
async def test_tiled_fp32_output_equals_whole_frame_output(
    weights: Weights, whole_frame: WholeFrame, height: int, width: int, tile_size: int
) -> None:
    image = random_image(height, width)

    async with TorchDenoiser(weights, InferenceConfig(tile_size=tile_size, max_batch=8)) as denoiser:
        tiled = await denoiser.denoise(image)

    assert tiled.shape == image.shape
    assert tiled.dtype == np.float32
    assert np.abs(tiled - whole_frame(image)).max() <= TOLERANCE


async def test_uint8_image_is_denoised_clamped_and_rounded(weights: Weights, whole_frame: WholeFrame) -> None:
    image = (random_image(60, 90) * 255).astype(np.uint8)

    async with TorchDenoiser(weights, InferenceConfig(tile_size=64)) as denoiser:
        denoised = await denoiser.denoise(image)

    assert denoised.dtype == np.uint8
    difference = np.abs(denoised.astype(np.int32) - expected_integers(whole_frame, image, 255.0))
    assert difference.max() <= 1


async def test_greyscale_is_denoised_as_three_equal_channels_and_returned_as_one(
    weights: Weights, whole_frame: WholeFrame
) -> None:
    grey = (random_image(70, 50, channels=1) * 255).astype(np.uint8)[..., 0]

    async with TorchDenoiser(weights, InferenceConfig(tile_size=64)) as denoiser:
        denoised = await denoiser.denoise(grey)

    replicated = np.repeat(grey[..., None] / np.float32(255), 3, axis=2).astype(np.float32)
    expected = np.round(np.clip(whole_frame(replicated).mean(axis=2), 0, 1) * 255)
    assert denoised.shape == grey.shape
    assert denoised.dtype == np.uint8
    assert np.abs(denoised.astype(np.int32) - expected).max() <= 1


async def test_rgba_alpha_comes_back_untouched(weights: Weights) -> None:
    rgba = (random_image(80, 110, channels=4, seed=3) * 255).astype(np.uint8)

    async with TorchDenoiser(weights, InferenceConfig(tile_size=64)) as denoiser:
        denoised = await denoiser.denoise(rgba)
        colour_only = await denoiser.denoise(np.ascontiguousarray(rgba[..., :3]))

    assert denoised.shape == rgba.shape
    np.testing.assert_array_equal(denoised[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(denoised[..., :3], colour_only)


async def test_16_bit_image_keeps_its_depth(weights: Weights, whole_frame: WholeFrame) -> None:
    image = (random_image(60, 70, seed=5) * 65535).astype(np.uint16)

    async with TorchDenoiser(weights, InferenceConfig(tile_size=64)) as denoiser:
        denoised = await denoiser.denoise(image)

    assert denoised.dtype == np.uint16
    assert np.abs(denoised.astype(np.int64) - expected_integers(whole_frame, image, 65535.0)).max() <= 1
    assert np.count_nonzero(denoised % 257) > denoised.size // 2  # not 8-bit values stretched to 16 bits


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        (np.zeros((8, 8, 3), dtype=np.float64), "float64"),
        (np.zeros((8, 8, 5), dtype=np.uint8), "shape"),
        (np.zeros((2, 8, 8, 3), dtype=np.uint8), "shape"),
        (np.zeros((0, 8, 3), dtype=np.uint8), "empty"),
    ],
)
async def test_unsupported_images_are_refused(weights: Weights, image: np.ndarray, problem: str) -> None:
    async with TorchDenoiser(weights) as denoiser:
        with pytest.raises(UnsupportedImage, match=problem):
            await denoiser.denoise(image)


async def test_tiles_of_concurrent_images_share_one_forward_pass(weights: Weights, whole_frame: WholeFrame) -> None:
    images = [random_image(60, 100, seed=seed) for seed in range(3)]  # three 64-px tiles each, all padded
    config = InferenceConfig(tile_size=64, max_batch=32, max_wait_s=0.5)
    labels = {"name": "denoise-share-test"}

    def batches() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("pixtools_batch_size_count", labels) or 0.0
        total = REGISTRY.get_sample_value("pixtools_batch_size_sum", labels) or 0.0
        return count, total

    async with TorchDenoiser(weights, config, name=labels["name"]) as denoiser:
        before = batches()
        together = await asyncio.gather(*(denoiser.denoise(image) for image in images))
        after = batches()

    assert (after[0] - before[0], after[1] - before[1]) == (1, 9)
    for denoised, image in zip(together, images, strict=True):
        assert np.abs(denoised - whole_frame(image)).max() <= TOLERANCE


def test_denoiser_exposes_model_id_and_weights_hash(weights: Weights) -> None:
    denoiser = TorchDenoiser(weights)

    assert denoiser.model_id == "dncnn_color_blind"
    assert denoiser.weights_sha256 == weights.sha256
    assert len(weights.sha256) == 64


async def test_an_image_needing_more_tiles_than_allowed_is_refused_before_any_work(weights: Weights) -> None:
    image = random_image(200, 200)
    async with TorchDenoiser(weights, InferenceConfig(tile_size=64, max_tiles=4)) as denoiser:
        with pytest.raises(TooManyTiles, match="needs 49 tiles of 64 px; a step may run at most 4") as refused:
            await denoiser.denoise(image)
    assert refused.value.code == "image.too_many_tiles"
