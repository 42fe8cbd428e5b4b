"""Detect settings."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from pixtools_detect.model_files import DEFAULT_CLASSES_FILE, DEFAULT_MODEL_FILE, default_models_dir
from pixtools_platform.settings import CommonSettings


class DetectSettings(CommonSettings):
    """Settings of the detect worker (PIXTOOLS_* variables)."""

    ops_port: int = 9104
    prefetch: int = Field(default=8, ge=1, description="Images in flight at once, so their slices batch together.")
    models_dir: Path = Field(default_factory=default_models_dir, description="Folder holding the ONNX and classes.")
    model_file: str = Field(default=DEFAULT_MODEL_FILE, description="YOLOX-family ONNX file in models_dir.")
    classes_file: str = Field(default=DEFAULT_CLASSES_FILE, description="Class names, one per line.")
    device: Literal["cpu", "cuda"] | None = Field(default=None, description="Default: cuda when present.")
    batch_size: int = Field(default=8, ge=1, description="Slices per forward pass (8 on CPU, 64 on a GPU).")
    max_wait_s: float = Field(default=0.005, ge=0, description="Longest a slice waits for a fuller batch.")
    max_slices: int = Field(
        default=600, ge=1, description="Most slices one image may need; more fails the step as image.too_many_tiles."
    )
    max_pixels: int = Field(default=50_000_000, ge=1, description="Largest decoded image accepted, in pixels.")
    overlay_quality: int = Field(default=85, ge=1, le=100, description="JPEG quality of overlay images.")
