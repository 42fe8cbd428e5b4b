"""Compare Pillow and pyvips on the ingest service's CPU work, one thread each, in one run.

Run: .venv/bin/python bench/imaging/bench_imaging.py [--rounds 15] [--seconds 0.5]
Short rounds alternate between the tasks so that noise from a shared machine hits all alike;
the report gives median ops per CPU second (and per wall second) and the ratios of those medians.
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

import pyvips
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_loop import WEBP_METHOD, WEBP_QUALITY, convert_once
from sample_images import photo_jpeg, source_description

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


def ops_per_second(task: Task, seconds: float) -> tuple[float, float]:
    """Repeat a task for about the given wall time; return its rate per wall second and per CPU second."""
    task()  # warm caches and lazy library set-up outside the timing
    count = 0
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall_start < seconds:
        task()
        count += 1
    return count / (time.perf_counter() - wall_start), count / (time.process_time() - cpu_start)


def compare(name: str, tasks: dict[str, Task], rounds: int, seconds: float) -> dict[str, float]:
    """Alternate the tasks round by round, print each one's median rates and return the CPU-time medians."""
    # CPU time is the headline: on a shared machine it barely moves when other processes take the cores,
    # while wall time does; both libraries run one thread here, so CPU time is their real cost.
    wall: dict[str, list[float]] = {label: [] for label in tasks}
    cpu: dict[str, list[float]] = {label: [] for label in tasks}
    for _ in range(rounds):
        for label, task in tasks.items():
            wall_rate, cpu_rate = ops_per_second(task, seconds)
            wall[label].append(wall_rate)
            cpu[label].append(cpu_rate)
    print(f"\n## {name}")
    print(f"  {'':<30} {'ops/CPU-s':>10} {'(range)':>13} {'ops/wall-s':>11}")
    for label in tasks:
        spread = f"{min(cpu[label]):.1f}-{max(cpu[label]):.1f}"
        print(
            f"  {label:<30} {statistics.median(cpu[label]):>10.1f} {spread:>13} {statistics.median(wall[label]):>11.1f}"
        )
    return {label: statistics.median(values) for label, values in cpu.items()}


def compare_service(small: bytes, large: bytes, rounds: int, seconds: float) -> dict[str, float]:
    """Time the service's own functions against the bare Pillow work, to show what normalisation costs."""
    try:
        from pixtools_contracts import ConvertParams, ResizeParams
        from pixtools_imaging import convert, resize
    except ImportError:
        print("\n(pixtools_ingest not installed: service functions not timed)")
        return {}
    to_webp, to_800 = ConvertParams(format="webp"), ResizeParams(width=RESIZE_WIDTH)
    return compare(
        "service functions (pixtools_imaging) against the same bare Pillow work",
        {
            "bare loop": lambda: convert_once(small),
            "service convert": lambda: convert(small, to_webp, max_pixels=100_000_000).data,
            "bare pillow resize": lambda: pillow_resize(large),
            "service resize": lambda: resize(large, to_800, max_pixels=100_000_000).data,
        },
        rounds,
        seconds,
    )


def main() -> None:
    """Run both comparisons and print a Markdown-friendly report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.5, help="wall time per task per round")
    args = parser.parse_args()

    pyvips.cache_set_max(0)  # vips caches operations by buffer; a cache hit would time nothing
    pyvips.concurrency_set(1)
    small = photo_jpeg(640, 480)
    large = photo_jpeg(3000, 2000)
    print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs visible")
    print(f"Pillow {Image.__version__}; pyvips {pyvips.__version__} on libvips {pyvips.version(0)}.{pyvips.version(1)}")
    print(f"images: {source_description()}; 640x480 = {len(small)} B, 3000x2000 = {len(large)} B")
    print(f"rounds {args.rounds} x {args.seconds}s per task, alternating; one thread per library; medians")

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
    service = compare_service(small, large, args.rounds, args.seconds)
    print("\n## ratios (same run)")
    print(f"  convert, pyvips / pillow: {convert['pyvips'] / convert['pillow']:.2f}  (> 1: pyvips faster)")
    resize_ratio = resize["pyvips (thumbnail_buffer)"] / resize["pillow (draft + reducing_gap)"]
    print(f"  resize,  pyvips / pillow: {resize_ratio:.2f}")
    if service:
        print(f"  convert, service / bare loop: {service['service convert'] / service['bare loop']:.2f}")
        print(f"  resize,  service / bare pillow: {service['service resize'] / service['bare pillow resize']:.2f}")


if __name__ == "__main__":
    main()
