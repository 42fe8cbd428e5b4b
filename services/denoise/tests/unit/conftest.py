"""Fixtures that find the shared model and data folders, failing loudly when they are absent."""

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pixtools_denoise.model_files import MODELS_DIR_ENV, WEIGHTS_FILES, Weights, build_model, load_weights

REPOSITORY_ROOT = Path(__file__).resolve().parents[4]
SHARED_DIR = REPOSITORY_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    path = Path(os.environ.get(MODELS_DIR_ENV) or SHARED_DIR / "models")
    if not any((path / name).is_file() for name in WEIGHTS_FILES):
        pytest.fail(
            f"the DnCNN weights are not in {path}: these tests need {' or '.join(WEIGHTS_FILES)} there. "
            f"Set {MODELS_DIR_ENV} to the models folder, or run: pixtools-denoise models download --dir {path}"
        )
    return path


@pytest.fixture(scope="session")
def cbsd68_dir() -> Path:
    path = SHARED_DIR / "data" / "cbsd68"
    if not path.is_dir():
        pytest.fail(f"the CBSD68 test images are not in {path}: these tests read them from ../shared/data/cbsd68")
    return path


@pytest.fixture(scope="session")
def weights(models_dir: Path) -> Weights:
    return load_weights(models_dir)


@pytest.fixture(scope="session")
def whole_frame(weights: Weights) -> Callable[[np.ndarray], np.ndarray]:
    """The reference: a whole (H, W, 3) float32 image through the model in one fp32 pass, no tiling."""
    model = build_model(weights)

    def infer(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()

    return infer
