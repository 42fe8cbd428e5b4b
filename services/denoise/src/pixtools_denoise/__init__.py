"""PixTools denoise: DnCNN colour blind, tiled and micro-batched across concurrent images."""

from pixtools_denoise.adapters.torch_model import TorchDenoiser
from pixtools_denoise.errors import DenoiseError, InvalidWeights, MissingWeights, UnsupportedImage
from pixtools_denoise.model_files import Weights, default_models_dir, load_weights
from pixtools_denoise.runner import InferenceConfig

__all__ = [
    "DenoiseError",
    "InferenceConfig",
    "InvalidWeights",
    "MissingWeights",
    "TorchDenoiser",
    "UnsupportedImage",
    "Weights",
    "default_models_dir",
    "load_weights",
]
