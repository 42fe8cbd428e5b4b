from pathlib import Path

import numpy as np
import pytest

from pixtools_denoise import InferenceConfig, TorchDenoiser, Weights
from pixtools_denoise.evaluation import add_noise, list_images, load_rgb, measure_psnr

CROP = 128


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def test_noise_follows_the_reference_protocol() -> None:
    clean = np.full((4, 5, 3), 128, dtype=np.uint8)
    np.random.seed(0)
    reference = clean / 255.0 + np.random.normal(0, 25 / 255.0, clean.shape)

    noisy = add_noise(clean, 25)

    np.testing.assert_array_equal(noisy, reference)
    np.testing.assert_array_equal(add_noise(clean, 25), noisy)  # seeded afresh for every image


async def test_cbsd68_crops_at_sigma_25_gain_the_expected_psnr(weights: Weights, cbsd68_dir: Path) -> None:
    crops = [centre_crop(load_rgb(path), CROP) for path in list_images(cbsd68_dir, limit=2)]

    async with TorchDenoiser(weights, InferenceConfig(tile_size=CROP)) as denoiser:
        scores = [await measure_psnr(denoiser, crop, 25) for crop in crops]

    noisy, denoised = np.mean(scores, axis=0)
    # Measured once in fp32 with whole-frame inference; the full set gains 31.24 - 20.54 = 10.7 dB, these
    # textured centres less. The service's own end-to-end bar is 8 dB.
    assert noisy == pytest.approx(20.42, abs=0.02)
    assert denoised == pytest.approx(28.85, abs=0.02)
    assert denoised - noisy >= 8.0
