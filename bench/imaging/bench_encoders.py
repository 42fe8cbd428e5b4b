"""Sweep Pillow's encoder speed settings to pick the ingest service's defaults.

Run: .venv/bin/python bench/imaging/bench_encoders.py [--repeat 7] [--coco 10]
Prints median encode CPU time, output size and PSNR against the source for each setting,
on the same decoded 640x480 photo (and, for PNG, a flat-colour graphic too);
with --coco N, on each of the first N COCO sample photos at their own size, summed.
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
from sample_images import COCO_SAMPLE, photo

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


def measure(pictures: list[Image.Image], setting: Setting, repeat: int) -> str:
    """Encode each picture repeatedly; describe the summed median times and sizes and the mean fidelity."""
    label, format_name, options = setting
    total_ms, total_bytes, fidelity = 0.0, 0, []
    for picture in pictures:
        timings = []
        for _ in range(repeat):
            buffer = io.BytesIO()
            start = time.process_time()  # CPU time: steadier than wall time on a shared machine
            picture.save(buffer, format_name, **options)
            timings.append((time.process_time() - start) * 1000)
        total_ms += statistics.median(timings)
        total_bytes += len(buffer.getvalue())
        fidelity.append(psnr(picture, buffer.getvalue()))
    return f"| {label} | {total_ms:.1f} | {total_bytes} | {statistics.mean(fidelity):.2f} |"


def coco_photos(count: int) -> list[Image.Image]:
    """The first COCO sample photos at their own size, decoded to RGB."""
    photos = []
    for path in sorted(COCO_SAMPLE.glob("*.jpg"))[:count]:
        with Image.open(path) as source:
            photos.append(source.convert("RGB"))
    return photos


def main() -> None:
    """Print one Markdown table row per encoder setting and image set."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--coco", type=int, default=0, help="use the first N COCO photos instead")
    args = parser.parse_args()
    pictures = coco_photos(args.coco) if args.coco else [photo(640, 480)]
    print(f"{len(pictures)} picture(s); times and bytes are summed over them")
    print("| setting | median CPU ms | bytes | PSNR dB |\n|---|---:|---:|---:|")
    for setting in LOSSY + LOSSLESS:
        print(measure(pictures, setting, args.repeat))
    if not args.coco:
        for label, format_name, options in LOSSLESS:
            print(measure([graphic(640, 480)], (f"{label} (graphic)", format_name, options), args.repeat))


if __name__ == "__main__":
    main()
