"""GPU throughput sections of the denoise benchmark: the bare model loop and the full decode-denoise-encode path."""

import asyncio
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from pixtools_denoise import InferenceConfig, TorchDenoiser, Weights
from pixtools_denoise.model_files import build_model

SIZE = 512
GFLOP_PER_IMAGE = 350  # DnCNN on one 512x512 image, from the issue


def model_loop(weights: Weights, config: InferenceConfig, *, batch: int, seconds: float) -> dict[str, float]:
    """Images/s of the bare model on device-resident 512x512 batches, at the service's precision and layout."""
    device = torch.device(config.device)
    model = build_model(weights).to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    torch.backends.cudnn.benchmark = True
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.resolved_precision)
    x = torch.rand(batch, 3, SIZE, SIZE, device=device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        images, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model(x)
            images += batch
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    return {"batch": batch, "images_per_s": images / elapsed, "tflops": images * GFLOP_PER_IMAGE / elapsed / 1e3}


async def full_path(
    noisy: list[np.ndarray], weights: Weights, config: InferenceConfig, *, total: int, concurrency: int
) -> dict[str, float]:
    """Images/s of PNG bytes -> decode -> denoise -> encode PNG, decode and encode on a thread pool."""
    encoded = [encode_png(image) for image in noisy]
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    loop = asyncio.get_running_loop()
    in_flight = asyncio.Semaphore(concurrency)

    async def one(index: int) -> int:
        async with in_flight:
            image = await loop.run_in_executor(pool, decode_png, encoded[index % len(encoded)])
            denoised = await denoiser.denoise(image)
            return len(await loop.run_in_executor(pool, encode_png, denoised))

    async with TorchDenoiser(weights, config, name="bench-full-path") as denoiser:
        await asyncio.gather(*(one(index) for index in range(concurrency)))  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(total)))
        elapsed = time.perf_counter() - started
    pool.shutdown()
    return {"images": total, "images_per_s": total / elapsed, "concurrency": concurrency}


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes at zlib level 1, the fast setting an image service would use for intermediates."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """A PNG as an RGB uint8 array."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))
