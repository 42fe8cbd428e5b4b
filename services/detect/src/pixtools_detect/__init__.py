"""PixTools detect: YOLOX with sliced (SAHI-style) inference, per-class counts and overlays."""

from pixtools_detect.adapters.torch_model import TorchDetector, default_device
from pixtools_detect.errors import (
    DetectError,
    ModelConversionError,
    ModelDownloadFailed,
    ModelFileMissing,
    UnknownClassNames,
)
from pixtools_detect.model_files import DEFAULT_CLASSES_FILE, DEFAULT_MODEL_FILE, default_models_dir
from pixtools_detect.network import YoloxNetwork, load_network
from pixtools_detect.overlay import draw_overlay
from pixtools_detect.results import Detection, DetectionResult

__all__ = [
    "DEFAULT_CLASSES_FILE",
    "DEFAULT_MODEL_FILE",
    "DetectError",
    "Detection",
    "DetectionResult",
    "ModelConversionError",
    "ModelDownloadFailed",
    "ModelFileMissing",
    "TorchDetector",
    "UnknownClassNames",
    "YoloxNetwork",
    "default_device",
    "default_models_dir",
    "draw_overlay",
    "load_network",
]
