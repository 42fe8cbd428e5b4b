"""Denoise settings."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from pixtools_denoise.model_files import default_models_dir
from pixtools_platform.settings import CommonSettings


class DenoiseSettings(CommonSettings):
    """Settings of the denoise worker (PIXTOOLS_* variables)."""

    ops_port: int = 9103
    prefetch: int = Field(default=8, ge=1, description="Images in flight at once, so their tiles batch together.")
    models_dir: Path = Field(default_factory=default_models_dir, description="Folder holding the DnCNN weights.")
    device: str | None = Field(default=None, description="cpu, cuda or cuda:N; default: cuda when present.")
    precision: Literal["fp32", "bf16", "fp16"] | None = Field(default=None, description="Default: fp16 on CUDA.")
    tile_size: int = Field(default=512, ge=64, description="Tile edge in pixels.")
    max_batch: int | None = Field(default=None, ge=1, description="Tiles per forward pass (default 2 CPU, 32 GPU).")
    max_tiles: int = Field(
        default=400, ge=1, description="Most tiles one image may need; more fails the step as image.too_many_tiles."
    )
    max_wait_s: float = Field(default=0.005, ge=0, description="Longest a tile waits for a fuller batch.")
    max_pixels: int = Field(default=50_000_000, ge=1, description="Largest decoded image accepted, in pixels.")
    output_quality: int = Field(default=95, ge=1, le=100, description="Quality when the output family is lossy.")
