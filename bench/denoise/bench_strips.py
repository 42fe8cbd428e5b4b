"""What a thin image costs to denoise, against one ordinary 512 x 512 tile timed in the same run.

    .venv/bin/python bench/denoise/bench_strips.py            # CPU, the service's default tile size
    .venv/bin/python bench/denoise/bench_strips.py --rounds 5

A strip used to be padded to whole tiles: a 1 x 60000 image ran 128 tiles of 512 x 512, 555 times its own
pixels. Windows now follow a thin image's shape (see pixtools_denoise.tiling), so its cost should follow its
real pixels: 60000 pixels are about 0.23 of one tile's 262144. Rounds alternate the order of the shapes, so
load from other processes hits them alike; the median of each is reported with its ratio to the tile.
"""

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import numpy as np

from pixtools_denoise import InferenceConfig, TorchDenoiser
from pixtools_denoise.tiling import plan_tiles

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SHAPES = {"tile 512x512": (512, 512), "strip 1x60000": (1, 60000), "column 60000x1": (60000, 1)}


async def measure(rounds: int, models_dir: Path) -> dict[str, list[float]]:
    """Seconds per denoise of each shape, `rounds` times, in alternating order."""
    rng = np.random.default_rng(0)
    images = {name: (rng.random((*shape, 3)) * 255).astype(np.uint8) for name, shape in SHAPES.items()}
    times: dict[str, list[float]] = {name: [] for name in SHAPES}
    async with TorchDenoiser.from_models_dir(models_dir, InferenceConfig()) as denoiser:
        await denoiser.denoise(images["tile 512x512"])  # warm-up
        for round_index in range(rounds):
            order = list(SHAPES) if round_index % 2 == 0 else list(reversed(SHAPES))
            for name in order:
                started = time.perf_counter()
                await denoiser.denoise(images[name])
                times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    """Run the rounds and print one row per shape."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models-dir", type=Path, default=REPOSITORY_ROOT.parent / "shared" / "models")
    arguments = parser.parse_args()
    times = asyncio.run(measure(arguments.rounds, arguments.models_dir))
    tile = statistics.median(times["tile 512x512"])
    print(f"{'shape':<16} {'windows':>7} {'pixels run':>11} {'median s':>9} {'vs one tile':>11}")
    for name, (height, width) in SHAPES.items():
        windows = plan_tiles(height, width, tile_size=512, margin=20)
        pixels = sum(window.window_height * window.window_width for window in windows)
        median = statistics.median(times[name])
        print(f"{name:<16} {len(windows):>7} {pixels:>11} {median:>9.2f} {median / tile:>10.2f}x")


if __name__ == "__main__":
    main()
