"""Shared fixtures: the real model files and coco-sample pictures from ../shared, and one running detector."""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from PIL import Image

from pixtools_detect import TorchDetector
from pixtools_detect.network import YoloxNetwork, load_network

REPO_ROOT = Path(__file__).resolve().parents[4]
# A picture with people in it (and a clock, a TV, chairs...): coco val2017 id 139.
PEOPLE_PICTURE = "000000000139.jpg"
# A clearly visible standing person in coco id 2532, box found by the model at score 0.88.
PERSON_PICTURE, PERSON_BOX = "000000002532.jpg", (183, 303, 270, 479)


def _shared_dir(env: str, default: Path, needed: str) -> Path:
    path = Path(os.environ[env]) if env in os.environ else default
    if not (path / needed).exists():
        pytest.fail(
            f"{path / needed} not found: the detect tests need the shared fixtures. "
            f"Set {env} or put them at {default} (see ../shared/README.md).",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The models directory: PIXTOOLS_MODELS_DIR or <repo>/../shared/models."""
    return _shared_dir("PIXTOOLS_MODELS_DIR", REPO_ROOT.parent / "shared" / "models", "yolox_nano.onnx")


@pytest.fixture(scope="session")
def coco_dir() -> Path:
    """coco-sample pictures: PIXTOOLS_DATA_DIR/coco-sample or <repo>/../shared/data/coco-sample."""
    data = _shared_dir("PIXTOOLS_DATA_DIR", REPO_ROOT.parent / "shared" / "data", "coco-sample")
    return data / "coco-sample"


@pytest.fixture(scope="session")
def network(models_dir: Path) -> YoloxNetwork:
    """YOLOX-Nano converted once per session."""
    return load_network(models_dir)


@pytest.fixture(scope="session")
async def detector(network: YoloxNetwork) -> AsyncIterator[TorchDetector]:
    """A started CPU detector shared by the tests."""
    async with TorchDetector(network, device="cpu", batch_size=8) as running:
        yield running


@pytest.fixture(scope="session")
def people_image(coco_dir: Path) -> np.ndarray:
    """A coco-sample photograph with people, RGB uint8."""
    return np.asarray(Image.open(coco_dir / PEOPLE_PICTURE).convert("RGB"))


@pytest.fixture(scope="session")
def person_crop(coco_dir: Path) -> np.ndarray:
    """One standing person cut tightly from a coco-sample photograph."""
    picture = np.asarray(Image.open(coco_dir / PERSON_PICTURE).convert("RGB"))
    x1, y1, x2, y2 = PERSON_BOX
    return picture[y1:y2, x1:x2].copy()


@pytest.fixture(autouse=True, scope="session")
def _two_threads() -> None:
    # The development machines have 2 cores; more threads than that only adds contention.
    torch.set_num_threads(min(2, os.cpu_count() or 1))


class MiniYolox:
    """Builds a small YOLOX-shaped ONNX graph in code: Focus slices, (depthwise) convs with SiLU, SPP pooling,
    an upsample, and a decoupled head on strides 8, 16 and 32, with random weights and any class count."""

    def __init__(self, classes: int, size: int = 64, seed: int = 0) -> None:
        self.classes, self.size = classes, size
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def constant(self, values: list[int] | list[float], dtype: type = np.int64) -> str:
        name = self._name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        output = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def conv(
        self, x: str, cin: int, cout: int, kernel: int = 3, stride: int = 1, group: int = 1, act: bool = True
    ) -> str:
        weight = self._name("w")
        bias = self._name("b")
        shape = (cout, cin // group, kernel, kernel)
        self.initializers.append(numpy_helper.from_array(self.rng.normal(0, 0.2, shape).astype(np.float32), weight))
        self.initializers.append(numpy_helper.from_array(self.rng.normal(0, 0.1, cout).astype(np.float32), bias))
        pad = kernel // 2
        y = self.node(
            "Conv",
            [x, weight, bias],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=group,
            dilations=[1, 1],
        )
        return self.node("Mul", [y, self.node("Sigmoid", [y])]) if act else y

    def build(self) -> onnx.ModelProto:
        big = 2**63 - 1
        quarters = []
        for row, col in ((0, 0), (1, 0), (0, 1), (1, 1)):
            rows = self.node(
                "Slice", ["images", self.constant([row]), self.constant([big]), self.constant([2]), self.constant([2])]
            )
            quarters.append(
                self.node(
                    "Slice", [rows, self.constant([col]), self.constant([big]), self.constant([3]), self.constant([2])]
                )
            )
        x = self.conv(self.node("Concat", quarters, axis=1), 12, 8)
        x = self.conv(x, 8, 8, stride=2, group=8)  # depthwise, as in YOLOX-Nano
        p3 = self.conv(self.conv(x, 8, 16, kernel=1), 16, 16, stride=2)
        p4 = self.conv(p3, 16, 16, stride=2)
        p5 = self.conv(p4, 16, 16, stride=2)
        pooled = self.node("MaxPool", [p5], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
        p5 = self.conv(self.node("Concat", [p5, pooled], axis=1), 32, 16, kernel=1)
        scales = self.constant([1.0, 1.0, 2.0, 2.0], np.float32)
        upsampled = self.node(
            "Resize",
            [p5, self.constant([], np.float32), scales],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
        p4 = self.node("Add", [p4, upsampled])
        levels = []
        for feature in (p3, p4, p5):
            reg = self.conv(feature, 16, 4, kernel=1, act=False)
            obj = self.node("Sigmoid", [self.conv(feature, 16, 1, kernel=1, act=False)])
            cls = self.node("Sigmoid", [self.conv(feature, 16, self.classes, kernel=1, act=False)])
            merged = self.node("Concat", [reg, obj, cls], axis=1)
            levels.append(self.node("Reshape", [merged, self.constant([1, 5 + self.classes, -1])]))
        flat = self.node("Concat", levels, axis=2)
        self.nodes.append(helper.make_node("Transpose", [flat], ["output"], perm=[0, 2, 1]))
        graph = helper.make_graph(
            self.nodes,
            "mini_yolox",
            [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, self.size, self.size])],
            [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, None)],
            self.initializers,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)


@pytest.fixture
def mini_yolox() -> type[MiniYolox]:
    """The MiniYolox builder class."""
    return MiniYolox
