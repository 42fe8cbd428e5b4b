"""Sweep Pillow's encoder speed settings to pick the ingest service's defaults.

Run: .venv/bin/python bench/imaging/bench_encoders.py [--repeat 7]
Prints median encode time, output size and PSNR against the source for each setting,
on the same decoded 640x480 photo (and, for PNG, a flat-colour graphic too).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample_images import photo  # noqa: E402

Setting = tuple[str, str, dict[str, Any]]

LOSSY: list[Setting] = [
    ("jpeg q85", "JPEG", {"quality": 85}),
    ("jpeg q85 optimize", "JPEG", {"quality": 85, "optimize": True}),
    ("jpeg q85 progressive", "JPEG", {"quality": 85, "progressive": True}),
    *[(f"webp q80 method {m}", "WEBP", {"quality": 80, "method": m}) for m in range(7)],
    *[(f"avif q60 speed {s}", "AVIF", {"quality": 60, "speed": s, "max_threads": 1}) for s in (6, 7, 8, 9, 10)],
]
LOSSLESS: list[Setting] = [(f"png level {level}", "PNG", {"compress_level": level}) for level in (1, 3, 6, 9)]


def graphic(width: int, height: int) -> Image.Image:
    """A screenshot-like image of flat shapes, where PNG's compression level matters most."""
    image = Image.new("RGB", (width, height), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    for index in range(40):
        left, top = (index * 53) % width, (index * 37) % height
        draw.rectangle((left, top, left + 90, top + 30), fill=(index * 6 % 256, 90, 200 - index * 4))
        draw.text((left + 4, top + 8), f"label {index}", fill=(0, 0, 0))
    return image


def psnr(reference: Image.Image, encoded: bytes) -> float:
    """Peak signal-to-noise ratio of the decoded output against the source, in dB."""
    with Image.open(io.BytesIO(encoded)) as decoded:
        error = np.asarray(reference, np.float64) - np.asarray(decoded.convert("RGB"), np.float64)
    mse = float(np.mean(error**2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def measure(image: Image.Image, setting: Setting, repeat: int) -> str:
    """Encode repeatedly and describe the median time, the size and the fidelity."""
    label, format_name, options = setting
    timings = []
    for _ in range(repeat):
        buffer = io.BytesIO()
        start = time.perf_counter()
        image.save(buffer, format_name, **options)
        timings.append((time.perf_counter() - start) * 1000)
    data = buffer.getvalue()
    return f"| {label} | {statistics.median(timings):.1f} | {len(data)} | {psnr(image, data):.2f} |"


def main() -> None:
    """Print one Markdown table row per encoder setting and image."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    picture, drawing = photo(640, 480), graphic(640, 480)
    print("| setting | median ms | bytes | PSNR dB |\n|---|---:|---:|---:|")
    for setting in LOSSY + LOSSLESS:
        print(measure(picture, setting, args.repeat))
    for label, format_name, options in LOSSLESS:
        print(measure(drawing, (f"{label} (graphic)", format_name, options), args.repeat))


if __name__ == "__main__":
    main()
