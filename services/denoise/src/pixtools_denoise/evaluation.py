"""Quality evaluation with the reference protocol of ../shared/models/SOURCES.md.

Clean RGB in [0, 1] plus N(0, sigma/255) noise drawn from numpy's legacy generator seeded with 0 for each
image, not clipped; the noisy and denoised images are both clamped to [0, 1] and rounded to uint8 before
PSNR against the clean uint8 image.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pixtools_denoise.adapters.torch_model import TorchDenoiser

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_CONCURRENT_IMAGES = 16  # enough for tiles of several images to share batches, few enough to bound memory


@dataclass(frozen=True)
class SigmaResult:
    """Mean PSNR over a set of images at one noise level."""

    sigma: float
    images: int
    noisy_psnr: float
    denoised_psnr: float


def add_noise(clean: np.ndarray, sigma: float) -> np.ndarray:
    """Clean uint8 image scaled to [0, 1] plus unclipped Gaussian noise of std sigma/255, seed 0."""
    return clean / 255.0 + np.random.RandomState(0).normal(0.0, sigma / 255.0, clean.shape)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Clamp a [0, 1] image and round it to uint8."""
    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 images."""
    mse = np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def load_rgb(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def list_images(data_dir: Path, limit: int | None = None) -> list[Path]:
    """Image files in `data_dir`, sorted by name, at most `limit` of them."""
    paths = sorted(path for path in data_dir.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {data_dir}")
    return paths[:limit]


async def measure_psnr(denoiser: TorchDenoiser, clean: np.ndarray, sigma: float) -> tuple[float, float]:
    """PSNR of the noisy and of the denoised image for one clean uint8 image."""
    noisy = add_noise(clean, sigma)
    denoised = await denoiser.denoise(noisy.astype(np.float32))
    return psnr(to_uint8(noisy), clean), psnr(to_uint8(denoised), clean)


async def evaluate(denoiser: TorchDenoiser, paths: Sequence[Path], sigmas: Sequence[float]) -> list[SigmaResult]:
    """Mean noisy and denoised PSNR of `paths` at each sigma, images denoised concurrently."""
    slots = asyncio.Semaphore(_CONCURRENT_IMAGES)

    async def one(path: Path, sigma: float) -> tuple[float, float]:
        async with slots:
            clean = await asyncio.to_thread(load_rgb, path)
            return await measure_psnr(denoiser, clean, sigma)

    results = []
    for sigma in sigmas:
        scores = await asyncio.gather(*(one(path, sigma) for path in paths))
        noisy, denoised = zip(*scores, strict=True)
        results.append(SigmaResult(sigma, len(paths), float(np.mean(noisy)), float(np.mean(denoised))))
    return results
