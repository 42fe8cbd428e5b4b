"""Load a YOLOX-family ONNX file and its class list into a torch network, and decode its raw output."""

from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from pixtools_detect.errors import ModelConversionError
from pixtools_detect.model_files import DEFAULT_CLASSES_FILE, DEFAULT_MODEL_FILE, require_file, sha256_of
from pixtools_detect.onnx_graph import convert_onnx

# Every YOLOX variant (nano, tiny, s, m, l, x) predicts on these three feature-map strides; load checks the
# anchor count against them so a model that differs fails at startup instead of decoding nonsense.
YOLOX_STRIDES = (8, 16, 32)
# Output columns before the class scores: x, y, w, h, objectness.
_BOX_COLUMNS = 5


@dataclass(frozen=True)
class YoloxNetwork:
    """A converted YOLOX module with what decoding needs: input size, strides and class names, plus its identity."""

    module: nn.Module
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    model_id: str
    sha256: str


def read_class_names(path: Path) -> tuple[str, ...]:
    """Class names, one per line in model output order; blank lines are ignored."""
    return tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _input_size(model: onnx.ModelProto) -> tuple[int, int]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    height, width = dims[2].dim_value, dims[3].dim_value
    if height <= 0 or width <= 0:
        raise ModelConversionError("the ONNX input needs fixed height and width (for example 416x416)")
    return height, width


def load_network(
    models_dir: Path, *, model_file: str = DEFAULT_MODEL_FILE, classes_file: str = DEFAULT_CLASSES_FILE
) -> YoloxNetwork:
    """Convert the configured ONNX file; refuse with a clear message when a file is missing or the shapes disagree."""
    model_path = require_file(models_dir, model_file)
    classes_path = require_file(models_dir, classes_file)
    model = onnx.load(str(model_path))
    # Depth, width and depthwise-or-not are never configured: the converter rebuilds every layer from the graph
    # and its initializer shapes, so tiny, s or a custom-trained YOLOX loads by naming its file alone.
    module = convert_onnx(model)
    input_size = _input_size(model)
    class_names = read_class_names(classes_path)
    with torch.inference_mode():
        probe = module(torch.zeros(1, 3, *input_size))
    anchors = sum((input_size[0] // stride) * (input_size[1] // stride) for stride in YOLOX_STRIDES)
    if probe.dim() != 3 or probe.shape[1] != anchors:
        raise ModelConversionError(
            f"{model_file} outputs {tuple(probe.shape)}; a YOLOX head at strides {YOLOX_STRIDES} "
            f"gives (1, {anchors}, 5 + classes)"
        )
    # The class count is read off the head's output width, so another class list only has to agree with it.
    predicted_classes = probe.shape[2] - _BOX_COLUMNS
    if predicted_classes != len(class_names):
        raise ModelConversionError(
            f"{model_file} predicts {predicted_classes} classes but {classes_file} lists {len(class_names)}"
        )
    return YoloxNetwork(module, input_size, class_names, Path(model_file).stem, sha256_of(model_path))


def anchor_grid(input_size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell offsets (A, 2) as x, y and strides (A, 1) of every anchor, in the head's output order."""
    offsets, strides = [], []
    for stride in YOLOX_STRIDES:
        rows, cols = input_size[0] // stride, input_size[1] // stride
        y, x = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        offsets.append(torch.stack((x, y), dim=2).reshape(-1, 2))
        strides.append(torch.full((rows * cols, 1), stride))
    return torch.cat(offsets).float().to(device), torch.cat(strides).float().to(device)


def decode_boxes(raw: torch.Tensor, offsets: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Grid-relative (N, A, 4) centre and log-size outputs to xyxy boxes in model input pixels."""
    centre = (raw[..., :2] + offsets) * strides
    half_size = torch.exp(raw[..., 2:4]) * strides / 2
    return torch.cat((centre - half_size, centre + half_size), dim=-1)
