"""Test images for the imaging benchmarks, made in code or resized from the read-only COCO sample."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

COCO_SAMPLE = Path("/work/shared/data/coco-sample")


def _synthetic_rgb(width: int, height: int) -> Image.Image:
    """Gradients, soft waves and fine noise: compresses roughly like a photo, unlike pure noise."""
    rng = np.random.default_rng(1234)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * x / max(width - 1, 1)
    green = 128 + 100 * np.sin(x / 37.0) * np.cos(y / 53.0)
    blue = 255 * y / max(height - 1, 1)
    pixels = np.stack([red, green, blue], axis=-1) + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def photo(width: int, height: int) -> Image.Image:
    """A real photo (first COCO sample) resized to the size asked for, or a synthetic one without the sample."""
    candidates = sorted(COCO_SAMPLE.glob("*.jpg")) if COCO_SAMPLE.is_dir() else []
    if not candidates:
        return _synthetic_rgb(width, height)
    with Image.open(candidates[0]) as source:
        resized = source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    if width * height <= source.width * source.height:
        return resized
    # An upscaled photo is unnaturally smooth and decodes faster than a real camera frame; grain restores detail.
    grain = np.random.default_rng(1234).normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(resized, dtype=np.float32) + grain, 0, 255).astype(np.uint8), "RGB")


def photo_jpeg(width: int, height: int, quality: int = 90) -> bytes:
    """The photo encoded as a baseline JPEG, as a camera or upload would deliver it."""
    buffer = io.BytesIO()
    photo(width, height).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def source_description() -> str:
    """Say where the benchmark pixels came from, for the report."""
    if COCO_SAMPLE.is_dir() and any(COCO_SAMPLE.glob("*.jpg")):
        return f"first JPEG of {COCO_SAMPLE} resized with Lanczos (grain added when enlarged) and re-encoded at q90"
    return "synthetic gradients with noise (COCO sample not found)"
