"""The converted torch network computes what onnxruntime computes, for any batch size and any YOLOX shape."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import helper

from pixtools_contracts import DetectParams, SahiParams
from pixtools_detect import ModelConversionError, TorchDetector, load_network
from pixtools_detect.onnx_graph import convert_onnx
from pixtools_detect.preprocess import letterbox_batch

PARITY = 1e-3


def _onnxruntime(model_bytes: bytes, batch: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    # The export fixes the batch at 1, so the reference runs one picture at a time.
    return np.concatenate([session.run(None, {"images": batch[i : i + 1]})[0] for i in range(len(batch))])


def test_nano_raw_outputs_match_onnxruntime_within_1e3(models_dir: Path, network, people_image) -> None:
    model_path = models_dir / "yolox_nano.onnx"
    photo, _ = letterbox_batch([torch.from_numpy(people_image.copy())], network.input_size, torch.device("cpu"))
    noise = np.random.default_rng(0).uniform(0, 255, (2, 3, 416, 416)).astype(np.float32)
    batch = np.concatenate([photo.numpy(), noise])
    with torch.inference_mode():
        ours = network.module(torch.from_numpy(batch)).numpy()
    reference = _onnxruntime(model_path.read_bytes(), batch)
    assert ours.shape == reference.shape == (3, 3549, 85)
    assert np.abs(ours - reference).max() <= PARITY


def test_batch_of_three_equals_three_single_passes(network) -> None:
    batch = torch.rand(3, 3, 416, 416) * 255
    with torch.inference_mode():
        together = network.module(batch)
        alone = torch.cat([network.module(batch[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-4)


def test_other_yolox_shapes_and_class_counts_convert_and_match_onnxruntime(mini_yolox) -> None:
    model = mini_yolox(classes=3).build()
    batch = np.random.default_rng(1).uniform(0, 255, (2, 3, 64, 64)).astype(np.float32)
    with torch.inference_mode():
        ours = convert_onnx(model)(torch.from_numpy(batch)).numpy()
    reference = _onnxruntime(model.SerializeToString(), batch)
    assert ours.shape == reference.shape == (2, 8 * 8 + 4 * 4 + 2 * 2, 5 + 3)
    assert np.abs(ours - reference).max() <= PARITY


async def test_another_model_and_class_list_load_through_configuration_alone(tmp_path: Path, mini_yolox) -> None:
    onnx.save(mini_yolox(classes=3).build(), tmp_path / "custom.onnx")
    (tmp_path / "custom_classes.txt").write_text("cat\ndog\nbird\n")
    network = load_network(tmp_path, model_file="custom.onnx", classes_file="custom_classes.txt")
    assert (network.input_size, network.class_names, network.model_id) == ((64, 64), ("cat", "dog", "bird"), "custom")
    picture = np.random.default_rng(2).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    async with TorchDetector(network, device="cpu", batch_size=4) as detector:
        result = await detector.detect(picture, DetectParams(confidence=0.0, sahi=SahiParams(slice=64)))
    assert result.slices > 1
    assert {d.class_name for d in result.detections} <= {"cat", "dog", "bird"}


def test_class_list_that_disagrees_with_the_head_is_refused(tmp_path: Path, mini_yolox) -> None:
    onnx.save(mini_yolox(classes=3).build(), tmp_path / "custom.onnx")
    (tmp_path / "classes.txt").write_text("cat\ndog\nbird\nfish\n")
    with pytest.raises(ModelConversionError, match=r"predicts 3 classes but classes\.txt lists 4"):
        load_network(tmp_path, model_file="custom.onnx", classes_file="classes.txt")


def test_unsupported_op_is_named(mini_yolox) -> None:
    model = mini_yolox(classes=2).build()
    model.graph.node.insert(0, helper.make_node("Erf", ["images"], ["unused"], name="erf_0"))
    with pytest.raises(ModelConversionError, match="Erf"):
        convert_onnx(model)
