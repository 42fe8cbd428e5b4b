"""Run batches of tiles through DnCNN on one device; precision, memory layout and staging buffers live here."""

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pixtools_denoise.model import DnCNN
from pixtools_denoise.tiling import Tile, check_tiling

Precision = Literal["fp32", "bf16", "fp16"]
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Integer pixels map to [0, 1] by their type's full range: 16-bit by 65535, so a 16-bit image keeps its depth.
SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}


@dataclass(frozen=True)
class InferenceConfig:
    """Where DnCNN runs, at what precision, and how tiles are cut and batched."""

    device: str = "cpu"
    precision: Precision | None = None  # None: fp16 on CUDA, fp32 on CPU
    tile_size: int = 512
    margin: int = 20
    max_batch: int | None = None  # tiles per forward pass; None: 2 on CPU, 32 on CUDA
    max_tiles: int = 400  # tiles one image may need; a 50 MP image needs at most about 256 of 512 px
    max_wait_s: float = 0.005
    threads: int | None = None  # CPU intra-op threads; None: the cores this process may use

    def __post_init__(self) -> None:
        check_tiling(tile_size=self.tile_size, margin=self.margin)
        if self.precision not in (None, "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.max_tiles < 1:
            raise ValueError(f"max_tiles must be at least 1, got {self.max_tiles}")
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")

    @property
    def on_cuda(self) -> bool:
        """Whether the configured device is a CUDA GPU."""
        return torch.device(self.device).type == "cuda"

    @property
    def resolved_precision(self) -> Precision:
        """The precision in use once the device default is applied."""
        # bf16 keeps 8 significant bits and costs DnCNN about 0.08 dB on CBSD68; fp16 keeps 11 and, emulated
        # with fp32 accumulation as tensor cores do it, costs 0.001 dB at the same tensor-core rate.
        return self.precision or ("fp16" if self.on_cuda else "fp32")

    @property
    def resolved_max_batch(self) -> int:
        """The batch limit in use: on CPU a tile costs the same alone or in fours (measured), so batches stay small."""
        return self.max_batch or (32 if self.on_cuda else 2)


@dataclass(frozen=True, slots=True)
class TileJob:
    """One tile of one image: where its pixels are read from and where its kept output is written."""

    source: np.ndarray  # (H, W, C) view of the input image
    target: np.ndarray  # (H, W, C) view of the output image, same type
    tile: Tile
    colour_channels: int  # 1 for greyscale, 3 for RGB; any channels after them are alpha, copied untouched


def available_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup v2 quota (a container CPU limit)."""
    cores = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return cores


class TileRunner:
    """Runs lists of tile jobs through the model; call it from one thread only."""

    def __init__(self, model: DnCNN, config: InferenceConfig) -> None:
        self._config = config
        self._device = torch.device(config.device)
        if config.on_cuda:
            if not torch.cuda.is_available():
                raise ValueError(f"device {config.device!r} was asked for but CUDA is not available here")
            # Autotuning pays off because tile shapes are fixed; true fp32 stays fp32 rather than TF32.
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = config.resolved_precision != "fp32"
        else:
            # One worker thread runs every forward pass, so intra-op threads can take every core.
            torch.set_num_threads(config.threads or available_cores())
        # channels_last measured 1.2-1.3x faster than NCHW for fp32 on this project's 2-core CPU (1.7x more while
        # page faults still inflate NCHW's extra buffers), and it is what tensor cores want on GPU.
        # (torch's type stubs leave memory_format out of Module.to.)
        self._model = model.to(self._device).to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
        self._autocast_dtype = _AUTOCAST_DTYPES.get(config.resolved_precision)
        self._staging: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    def warm_up(self) -> None:
        """Run the largest and the smallest batch once so CUDA autotuning happens before the first real image."""
        if not self._config.on_cuda:
            return
        size = self._config.tile_size
        for batch in {self._config.resolved_max_batch, 1}:
            with torch.inference_mode(), self._autocast():
                self._model(
                    torch.zeros(batch, 3, size, size, device=self._device).contiguous(memory_format=torch.channels_last)
                )
        torch.cuda.synchronize(self._device)

    def run(self, jobs: list[TileJob]) -> list[None]:
        """Denoise every job's tile into its target; one forward pass per pixel type and window shape in the batch."""
        for dtype, window in dict.fromkeys((job.source.dtype, job.tile.window) for job in jobs):
            self._run_same_shape([job for job in jobs if job.source.dtype == dtype and job.tile.window == window])
        return [None] * len(jobs)

    def _run_same_shape(self, jobs: list[TileJob]) -> None:
        jobs = sorted(jobs, key=lambda job: not job.tile.padded)  # padded first: the mask then covers a prefix
        scale = SCALES[jobs[0].source.dtype]
        count = len(jobs)
        dtype = torch.uint8 if jobs[0].source.dtype == np.uint8 else torch.float32
        staged_in, staged_out = self._staging_for(dtype, jobs[0].tile.window, count)
        for slot, job in zip(staged_in.numpy(), jobs, strict=False):
            _stage(job, slot)
        with torch.inference_mode(), self._autocast():
            # uint8 pixels travel as uint8 and become float on the device: a quarter of the bytes to copy.
            pixels = staged_in[:count].to(self._device, non_blocking=True).permute(0, 3, 1, 2).float()
            x = pixels / scale if scale != 1.0 else pixels
            denoised = self._model(x, self._valid_mask(jobs)).float()
            grey = [index for index, job in enumerate(jobs) if job.colour_channels == 1]
            if grey:
                # Greyscale went in replicated to three channels; their mean is the single channel that comes back.
                denoised[grey] = denoised[grey].mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
            if scale != 1.0:
                denoised = denoised.mul_(scale).clamp_(0.0, scale).round_()
            staged_out[:count].copy_(denoised.permute(0, 2, 3, 1), non_blocking=True)
        if self._config.on_cuda:
            torch.cuda.synchronize(self._device)
        for slot, job in zip(staged_out.numpy(), jobs, strict=False):
            _unstage(job, slot)

    def _valid_mask(self, jobs: list[TileJob]) -> torch.Tensor | None:
        padded = [job.tile for job in jobs if job.tile.padded]
        if not padded:
            return None
        valid = torch.zeros(len(padded), 1, *padded[0].window, device=self._device)
        for index, tile in enumerate(padded):
            valid[index, :, : tile.height, : tile.width] = 1.0
        return valid

    def _staging_for(
        self, dtype: torch.dtype, window: tuple[int, int], count: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Host buffers for one batch in and out; pinned on CUDA so copies run asynchronously.

        Square tiles' buffers are allocated once and reused. A thin image's strip windows have shapes of their
        own, so theirs are allocated for the batch at hand (and pinned neither: they are rare).
        """
        size = self._config.tile_size
        if window != (size, size):
            shape = (count, *window, 3)
            return torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype)
        if dtype not in self._staging:
            shape = (self._config.resolved_max_batch, size, size, 3)
            pin = self._config.on_cuda
            self._staging[dtype] = (
                torch.empty(shape, dtype=dtype, pin_memory=pin),
                torch.empty(shape, dtype=dtype, pin_memory=pin),
            )
        return self._staging[dtype]

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._device.type, dtype=self._autocast_dtype)


def _stage(job: TileJob, slot: np.ndarray) -> None:
    """Copy a tile's colour pixels into its window-shaped slot, greyscale replicated, padding zeroed."""
    tile = job.tile
    if tile.padded:
        slot[...] = 0
    rows = slice(tile.top, tile.top + tile.height)
    columns = slice(tile.left, tile.left + tile.width)
    slot[: tile.height, : tile.width] = job.source[rows, columns, : job.colour_channels]


def _unstage(job: TileJob, slot: np.ndarray) -> None:
    """Write the kept centre of a denoised slot into the target, with the source's alpha copied as is."""
    tile = job.tile
    kept = (slice(tile.keep_top, tile.keep_bottom), slice(tile.keep_left, tile.keep_right))
    rows = slice(tile.keep_top - tile.top, tile.keep_bottom - tile.top)
    columns = slice(tile.keep_left - tile.left, tile.keep_right - tile.left)
    colour = job.colour_channels
    target = job.target[kept]
    target[..., :colour] = slot[rows, columns, :colour]
    if target.shape[2] > colour:
        target[..., colour:] = job.source[kept][..., colour:]
