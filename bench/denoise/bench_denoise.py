"""Denoise benchmark: the naive baseline against the service's inference path, in one run, on 512x512 images.

    .venv/bin/python bench/denoise/bench_denoise.py                       # CPU: baseline vs service, interleaved
    .venv/bin/python bench/denoise/bench_denoise.py --huge                # also peak RSS on one 8000x6000 image
    .venv/bin/python bench/denoise/bench_denoise.py --device cuda         # GPU: plus model loop and full path

The baseline is what the systems this project replaces do: one image at a time, whole frame, fp32, default
(NCHW) layout, default allocator. The service path is TorchDenoiser: fixed tiles, micro-batched across
concurrent images, channels_last, freed memory reused. Each timed pass runs in its own process (so its peak
RSS is its own), and rounds alternate which path goes first, so load from other processes on a shared
machine hits both alike.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gpu_throughput import full_path, model_loop  # beside this script, which Python puts on sys.path
from PIL import Image

from pixtools_denoise import InferenceConfig, TorchDenoiser, Weights, load_weights
from pixtools_denoise.allocator import reuse_freed_memory
from pixtools_denoise.evaluation import add_noise, list_images, load_rgb, psnr, to_uint8
from pixtools_denoise.model_files import build_model

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPOSITORY_ROOT.parent / "shared"
SIZE = 512
SIGMA = 25.0


def rss_mb(field_name: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM peak), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field_name} is not in /proc/self/status")


def bench_images(data_dir: Path, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Clean 512x512 CBSD68 images (bicubic resize) and their sigma-25 noisy uint8 versions."""
    paths = (list_images(data_dir) * count)[:count]
    clean = [
        np.asarray(Image.fromarray(load_rgb(path)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)) for path in paths
    ]
    return clean, [to_uint8(add_noise(image, SIGMA)) for image in clean]


def baseline_denoiser(weights: Weights, device: torch.device) -> Callable[[np.ndarray], np.ndarray]:
    """The naive path: whole frame, one image, fp32, default memory layout."""
    model = build_model(weights).to(device)

    def denoise(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float().contiguous() / 255.0
            y = model(x)[0].permute(1, 2, 0).clamp(0, 1).mul(255).round().to(torch.uint8)
            return y.cpu().numpy()

    return denoise


async def run_path(arguments: argparse.Namespace) -> dict[str, object]:
    """In a fresh process: one warm-up, then one timed pass of a path over the images, with its peak memory."""
    weights = load_weights(arguments.models_dir)
    config = bench_config(arguments)
    device = torch.device(config.device)
    clean, noisy = bench_images(arguments.data, arguments.images)
    if arguments.child == "service":
        denoiser = TorchDenoiser(weights, config, name="bench")
        await denoiser.start()

        async def denoise_all(images: list[np.ndarray]) -> list[np.ndarray]:
            return list(await asyncio.gather(*(denoiser.denoise(image) for image in images)))
    else:
        baseline = baseline_denoiser(weights, device)

        async def denoise_all(images: list[np.ndarray]) -> list[np.ndarray]:
            return [baseline(image) for image in images]

    await denoise_all(noisy[: config.resolved_max_batch])  # allocator, oneDNN primitives, cuDNN autotuning
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    outputs = await denoise_all(noisy)
    seconds = time.perf_counter() - started
    if arguments.child == "service":
        await denoiser.close()
    return {
        "seconds": seconds,
        "images": len(noisy),
        "peak_rss_mb": rss_mb("VmHWM"),
        "peak_device_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0,
        "psnr_db": float(np.mean([psnr(out, ref) for out, ref in zip(outputs, clean, strict=True)])),
        "noisy_psnr_db": float(np.mean([psnr(image, ref) for image, ref in zip(noisy, clean, strict=True)])),
    }


def in_child(arguments: argparse.Namespace, *flags: str) -> dict[str, Any]:
    """Run this script again with `flags` and the shared options; return the JSON it prints last."""
    command = [sys.executable, __file__, *flags, "--device", arguments.device, "--images", str(arguments.images)]
    command += ["--models-dir", str(arguments.models_dir), "--data", str(arguments.data)]
    if arguments.precision:
        command += ["--precision", arguments.precision]
    if arguments.max_batch:
        command += ["--max-batch", str(arguments.max_batch)]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return result


def compare(arguments: argparse.Namespace) -> dict[str, object]:
    """Each path in its own process, rounds interleaved with alternating order, figures side by side."""
    paths = ["baseline", "service"] + (["baseline-reused-memory"] if arguments.ablation else [])
    runs: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    for round_index in range(arguments.rounds):
        for path in paths if round_index % 2 == 0 else paths[::-1]:
            runs[path].append(in_child(arguments, "--child", path))
    figures = {path: summarise(results) for path, results in runs.items()}
    report: dict[str, object] = {"images": arguments.images, "rounds": arguments.rounds, **figures}
    report["noisy_psnr_db"] = runs["baseline"][0]["noisy_psnr_db"]
    for path in paths[1:]:
        report[f"{path}_speedup"] = figures[path]["images_per_s"] / figures["baseline"]["images_per_s"]
        report[f"{path}_psnr_change_db"] = figures[path]["psnr_db"] - figures["baseline"]["psnr_db"]
    return report


def summarise(results: list[dict[str, Any]]) -> dict[str, float]:
    """Throughput over all rounds of one path, its largest peak memory and its PSNR."""
    seconds = sum(result["seconds"] for result in results)
    images = sum(result["images"] for result in results)
    return {
        "images_per_s": images / seconds,
        "ms_per_image": 1000 * seconds / images,
        "peak_rss_mb": max(result["peak_rss_mb"] for result in results),
        "peak_device_mb": max(result["peak_device_mb"] for result in results),
        "psnr_db": results[0]["psnr_db"],
    }


def bench_config(arguments: argparse.Namespace) -> InferenceConfig:
    """The service configuration under test."""
    return InferenceConfig(device=arguments.device, precision=arguments.precision, max_batch=arguments.max_batch)


def huge_image_child(arguments: argparse.Namespace) -> dict[str, float]:
    """In a fresh process: denoise one noisy 8000x6000 mosaic and report the process's peak RSS."""
    weights = load_weights(arguments.models_dir)
    tile = load_rgb(list_images(arguments.data)[0])
    mosaic = np.tile(tile, (6000 // tile.shape[0] + 1, 8000 // tile.shape[1] + 1, 1))[:6000, :8000]
    noise = np.random.default_rng(0)
    image = np.empty_like(mosaic)
    for top in range(0, 6000, 500):  # a band at a time, so making the input does not raise the peak
        band = mosaic[top : top + 500] + noise.normal(0, SIGMA, mosaic[top : top + 500].shape).astype(np.float32)
        image[top : top + 500] = np.clip(band, 0, 255).round()
    del mosaic
    before = rss_mb("VmRSS")
    config = bench_config(arguments)

    async def run() -> float:
        async with TorchDenoiser(weights, config, name="bench-huge") as denoiser:
            started = time.perf_counter()
            await denoiser.denoise(image)
            return time.perf_counter() - started

    seconds = asyncio.run(run())
    return {
        "rss_before_denoise_mb": before,
        "peak_rss_mb": rss_mb("VmHWM"),  # the whole process's life: imports, input, output and inference
        "seconds": seconds,
        "max_batch": config.resolved_max_batch,
    }


def parse_arguments() -> argparse.Namespace:
    """Command-line options; every default is what RESULTS.md was measured with."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None, help="service precision")
    parser.add_argument("--images", type=int, default=8, help="512x512 images per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of both paths")
    parser.add_argument("--max-batch", type=int, default=None, help="tiles per forward pass (service default)")
    parser.add_argument("--concurrency", type=int, default=128, help="images in flight on the full path")
    parser.add_argument("--full-path-images", type=int, default=3000, help="images through the full path")
    parser.add_argument("--loop-batch", type=int, default=64, help="batch of the model loop")
    parser.add_argument("--loop-seconds", type=float, default=10.0, help="duration of the model loop")
    parser.add_argument("--model-loop", action="store_true", help="run the model loop section (always on CUDA)")
    parser.add_argument("--full-path", action="store_true", help="run the full-path section (always on CUDA)")
    parser.add_argument("--huge", action="store_true", help="also measure peak RSS on one 8000x6000 image")
    parser.add_argument("--ablation", action="store_true", help="also time the baseline with reused memory")
    parser.add_argument("--huge-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["baseline", "service", "baseline-reused-memory"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--models-dir", type=Path, default=Path(os.environ.get("PIXTOOLS_MODELS_DIR") or SHARED_DIR / "models")
    )
    parser.add_argument("--data", type=Path, default=SHARED_DIR / "data" / "cbsd68")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    return parser.parse_args()


def main() -> None:
    """Run the sections that fit the device and print one JSON report."""
    arguments = parse_arguments()
    if arguments.child != "baseline":  # the naive baseline keeps the default allocator
        reuse_freed_memory()  # first, as the service's entry point does; see pixtools_denoise/allocator.py
    if arguments.huge_child:
        print(json.dumps(huge_image_child(arguments)))
        return
    if arguments.child:
        print(json.dumps(asyncio.run(run_path(arguments))))
        return
    weights = load_weights(arguments.models_dir)
    config = bench_config(arguments)
    report: dict[str, object] = {
        "device": torch.cuda.get_device_name(config.device)
        if config.on_cuda
        else f"cpu, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "precision": config.resolved_precision,
        "tile_size": config.tile_size,
        "max_batch": config.resolved_max_batch,
        "weights_sha256": weights.sha256,
    }
    report["compare"] = compare(arguments)
    print(json.dumps(report["compare"]), file=sys.stderr, flush=True)  # progress: the later sections take long
    if config.on_cuda or arguments.model_loop:
        report["model_loop"] = model_loop(weights, config, batch=arguments.loop_batch, seconds=arguments.loop_seconds)
    if config.on_cuda or arguments.full_path:
        _, noisy = bench_images(arguments.data, min(arguments.images, 16))
        total, concurrency = arguments.full_path_images, arguments.concurrency
        report["full_path"] = asyncio.run(full_path(noisy, weights, config, total=total, concurrency=concurrency))
    if arguments.huge:
        report["huge_8000x6000"] = in_child(arguments, "--huge-child")
    print(json.dumps(report, indent=2))
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
