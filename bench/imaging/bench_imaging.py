"""Compare Pillow and pyvips on the ingest service's CPU work, one thread each, in one run.

Run: .venv/bin/python bench/imaging/bench_imaging.py [--rounds 7] [--seconds 1.0]
Rounds alternate between the libraries so that noise from a shared machine hits both alike;
the report gives the median ops/s per library and the ratio of those medians.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# libvips reads its thread count when it starts, so this must precede the import.
os.environ["VIPS_CONCURRENCY"] = "1"

import pyvips  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_loop import WEBP_METHOD, WEBP_QUALITY, convert_once  # noqa: E402
from sample_images import photo_jpeg, source_description  # noqa: E402

JPEG_QUALITY = 85
RESIZE_WIDTH = 800

Task = Callable[[], bytes]


def pillow_resize(jpeg_bytes: bytes) -> bytes:
    """Decode with DCT shrink-on-load, Lanczos to 800 wide, encode JPEG q85."""
    with Image.open(io.BytesIO(jpeg_bytes)) as image:
        height = round(image.height * RESIZE_WIDTH / image.width)
        image.draft("RGB", (RESIZE_WIDTH, height))
        resized = image.resize((RESIZE_WIDTH, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def pillow_resize_without_draft(jpeg_bytes: bytes) -> bytes:
    """The same resize decoding every pixel, to show what shrink-on-load buys."""
    with Image.open(io.BytesIO(jpeg_bytes)) as image:
        height = round(image.height * RESIZE_WIDTH / image.width)
        resized = image.resize((RESIZE_WIDTH, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def vips_convert(jpeg_bytes: bytes) -> bytes:
    """Decode a JPEG and encode WebP q80 at the same effort as Pillow's method."""
    image = pyvips.Image.new_from_buffer(jpeg_bytes, "", access="sequential")
    return bytes(image.webpsave_buffer(Q=WEBP_QUALITY, effort=WEBP_METHOD))


def vips_resize(jpeg_bytes: bytes) -> bytes:
    """thumbnail_buffer shrinks on load and finishes with Lanczos3, then encode JPEG q85."""
    image = pyvips.Image.thumbnail_buffer(jpeg_bytes, RESIZE_WIDTH, height=100_000, size="down")
    return bytes(image.jpegsave_buffer(Q=JPEG_QUALITY))


def ops_per_second(task: Task, seconds: float) -> float:
    """Repeat a task for about the given time and return its rate."""
    task()  # warm caches and lazy library set-up outside the timing
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        task()
        count += 1
    return count / elapsed


def compare(name: str, tasks: dict[str, Task], rounds: int, seconds: float) -> dict[str, float]:
    """Alternate the tasks round by round and print each one's median rate."""
    rates: dict[str, list[float]] = {label: [] for label in tasks}
    for _ in range(rounds):
        for label, task in tasks.items():
            rates[label].append(ops_per_second(task, seconds))
    medians = {label: statistics.median(values) for label, values in rates.items()}
    print(f"\n## {name}")
    for label, values in rates.items():
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"  {label:<28} median {medians[label]:8.1f} ops/s  (rounds {spread})")
    return medians


def main() -> None:
    """Run both comparisons and print a Markdown-friendly report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per task per round")
    args = parser.parse_args()

    pyvips.cache_set_max(0)  # vips caches operations by buffer; a cache hit would time nothing
    pyvips.concurrency_set(1)
    small = photo_jpeg(640, 480)
    large = photo_jpeg(3000, 2000)
    print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs visible")
    print(f"Pillow {Image.__version__}; pyvips {pyvips.__version__} on libvips {pyvips.version(0)}.{pyvips.version(1)}")
    print(f"images: {source_description()}; 640x480 = {len(small)} B, 3000x2000 = {len(large)} B")
    print(f"rounds {args.rounds} x {args.seconds}s per task, alternating; one thread per library")

    convert = compare(
        "decode 640x480 JPEG + encode WebP q80",
        {"pillow": lambda: convert_once(small), "pyvips": lambda: vips_convert(small)},
        args.rounds,
        args.seconds,
    )
    resize = compare(
        "decode 3000x2000 JPEG + resize to 800 wide + encode JPEG q85",
        {
            "pillow (draft + reducing_gap)": lambda: pillow_resize(large),
            "pillow (full decode)": lambda: pillow_resize_without_draft(large),
            "pyvips (thumbnail_buffer)": lambda: vips_resize(large),
        },
        args.rounds,
        args.seconds,
    )
    print("\n## ratios (pyvips / pillow, same run; > 1 means pyvips is faster)")
    print(f"  convert: {convert['pyvips'] / convert['pillow']:.2f}")
    print(f"  resize:  {resize['pyvips (thumbnail_buffer)'] / resize['pillow (draft + reducing_gap)']:.2f}")


if __name__ == "__main__":
    main()
