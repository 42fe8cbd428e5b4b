"""What bf16 and fp16 cost DnCNN in PSNR, measured without a GPU.

Tensor cores read fp16/bf16 weights and activations, accumulate in fp32 and store fp16/bf16. This emulates
that on the CPU: every weight, bias, input and conv output is rounded to the half type and computed in fp32.

    .venv/bin/python bench/denoise/precision_emulation.py --limit 12
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from pixtools_denoise import load_weights
from pixtools_denoise.evaluation import add_noise, list_images, load_rgb, psnr, to_uint8
from pixtools_denoise.model import DnCNN
from pixtools_denoise.model_files import build_model

SHARED_DIR = Path(__file__).resolve().parents[3] / "shared"


def denoise_rounded(model: DnCNN, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """DnCNN with every stored value rounded to `dtype` and every sum taken in fp32."""

    def rounded(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(dtype).float()

    features = rounded(x)
    for layer in model.model:
        if isinstance(layer, torch.nn.Conv2d):
            assert layer.bias is not None  # every DnCNN conv has one
            features = rounded(functional.conv2d(features, rounded(layer.weight), rounded(layer.bias), padding=1))
        else:
            features = torch.relu(features)
    return x - features


def main() -> None:
    """Print mean PSNR at sigma 25 for fp32 and the emulated half types."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=12, help="first N CBSD68 images by name")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--data", type=Path, default=SHARED_DIR / "data" / "cbsd68")
    parser.add_argument(
        "--models-dir", type=Path, default=Path(os.environ.get("PIXTOOLS_MODELS_DIR") or SHARED_DIR / "models")
    )
    arguments = parser.parse_args()
    model = build_model(load_weights(arguments.models_dir))
    variants = {
        "fp32": lambda x: model(x),
        "bf16": lambda x: denoise_rounded(model, x, torch.bfloat16),
        "fp16": lambda x: denoise_rounded(model, x, torch.float16),
    }
    scores: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for path in list_images(arguments.data, arguments.limit):
            clean = load_rgb(path)
            noisy = torch.from_numpy(add_noise(clean, arguments.sigma).astype(np.float32)).permute(2, 0, 1)[None]
            for name, denoise in variants.items():
                denoised = denoise(noisy)[0].permute(1, 2, 0).numpy()
                scores[name].append(psnr(to_uint8(denoised), clean))
    means = {name: float(np.mean(values)) for name, values in scores.items()}
    report = {"images": arguments.limit, "sigma": arguments.sigma, "psnr_db": means}
    report["change_db"] = {name: means[name] - means["fp32"] for name in ("bf16", "fp16")}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
