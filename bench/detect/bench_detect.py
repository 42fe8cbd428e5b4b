"""Sliced detection throughput: ms per 3000x2000 image (416 slices, 0.2 overlap) and slices/s, batched vs one-by-one.

CPU (the 2-core development machines):  .venv/bin/python bench/detect/bench_detect.py
GPU (one command on a lent GPU machine): python bench/detect/bench_detect.py --device cuda
"""

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixtools_contracts import DetectParams
from pixtools_detect import TorchDetector, default_models_dir, load_network
from pixtools_detect.evaluation import list_pictures
from pixtools_detect.network import YoloxNetwork

WIDTH, HEIGHT = 3000, 2000
# Five by four coco-sample photographs fill 3000x2000 with real scenes, so NMS and merging see real boxes.
COLUMNS, ROWS = 5, 4


def build_image(data_dir: Path) -> np.ndarray:
    """A 3000x2000 RGB canvas tiled with coco-sample photographs (noise if the folder is absent)."""
    if not data_dir.is_dir():
        return np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    cell_w, cell_h = WIDTH // COLUMNS, HEIGHT // ROWS
    canvas = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    for index, path in enumerate(list_pictures(data_dir)[: COLUMNS * ROWS]):
        row, column = divmod(index, COLUMNS)
        with Image.open(path) as picture:
            cell = picture.convert("RGB").resize((cell_w, cell_h), Image.Resampling.BILINEAR)
        canvas[row * cell_h : (row + 1) * cell_h, column * cell_w : (column + 1) * cell_w] = np.asarray(cell)
    return canvas


async def time_detector(
    network: YoloxNetwork, image: np.ndarray, *, device: str, batch_size: int, repeats: int, concurrency: int
) -> dict[str, float]:
    """Median seconds per image with `concurrency` images in flight, after two warm-up rounds."""
    params = DetectParams()
    async with TorchDetector(network, device=device, batch_size=batch_size, max_wait_s=0.002) as detector:
        result = await detector.detect(image, params)
        await detector.detect(image, params)
        rounds = []
        for _ in range(repeats):
            started = time.perf_counter()
            await asyncio.gather(*(detector.detect(image, params) for _ in range(concurrency)))
            rounds.append((time.perf_counter() - started) / concurrency)
    per_image = statistics.median(rounds)
    return {
        "batch_size": batch_size,
        "concurrency": concurrency,
        "slices_per_image": result.slices,
        "detections": len(result.detections),
        "ms_per_image": per_image * 1000,
        "ms_per_image_best": min(rounds) * 1000,
        "slices_per_s": result.slices / per_image,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument("--data", type=Path, default=Path("../shared/data/coco-sample"))
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 on CPU, 64 on CUDA")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the dev machines have 2 cores)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4, help="images in flight for the throughput row")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-slice-at-a-time baseline")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser


async def run(args: argparse.Namespace) -> tuple[str, dict[str, dict[str, float]]]:
    """Measure the batched detector, its throughput with concurrent images, and the un-batched baseline."""
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed 416x416 inputs: let cuDNN pick its fastest kernels once
    batch_size = args.batch_size or (64 if cuda else 8)
    network = load_network(args.models_dir)
    image = build_image(args.data)
    few = max(1, args.repeats // 2)
    rows = {
        "batched": await time_detector(
            network, image, device=args.device, batch_size=batch_size, repeats=args.repeats, concurrency=1
        ),
        "batched_concurrent": await time_detector(
            network, image, device=args.device, batch_size=batch_size, repeats=few, concurrency=args.concurrency
        ),
    }
    if not args.no_baseline:
        # The naive way: every slice its own forward pass, nothing batched, same pre- and post-processing.
        rows["one_slice_at_a_time"] = await time_detector(
            network, image, device=args.device, batch_size=1, repeats=few, concurrency=1
        )
    device_name = torch.cuda.get_device_name() if cuda else f"cpu, {args.threads} torch threads"
    return device_name, rows


def main() -> None:
    """Print the figures as a table (and JSON when asked)."""
    args = _parser().parse_args()
    device_name, rows = asyncio.run(run(args))
    print(f"yolox_nano on {device_name}: {WIDTH}x{HEIGHT} image, slice 416, overlap 0.2, plus the whole-frame pass")
    for name, row in rows.items():
        print(
            f"{name:>20}: {row['ms_per_image']:8.1f} ms/image (best {row['ms_per_image_best']:.1f}), "
            f"{row['slices_per_s']:7.1f} slices/s, batch {row['batch_size']:.0f}, {row['concurrency']:.0f} in flight, "
            f"{row['slices_per_image']:.0f} passes/image"
        )
    report: dict[str, object] = {"device": device_name, "image": f"{WIDTH}x{HEIGHT}", "rows": rows}
    if "one_slice_at_a_time" in rows:
        speedup = rows["one_slice_at_a_time"]["ms_per_image"] / rows["batched"]["ms_per_image"]
        report["batched_speedup_vs_one_slice_at_a_time"] = speedup
        print(f"batched is {speedup:.2f}x faster than one slice at a time in this same run")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
