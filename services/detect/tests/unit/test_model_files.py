"""The models directory: a missing file stops startup with instructions; downloads fail clearly when offline."""

import hashlib
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pixtools_detect import ModelDownloadFailed, ModelFileMissing, TorchDetector, load_network
from pixtools_detect.cli import main
from pixtools_detect.model_files import OFFICIAL_URLS, check_files, download


def test_missing_model_names_the_file_the_url_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(ModelFileMissing) as caught:
        load_network(tmp_path)
    message = str(caught.value)
    assert "yolox_nano.onnx" in message
    assert OFFICIAL_URLS["yolox_nano.onnx"] in message
    assert f"pixtools-detect models download --models-dir {tmp_path}" in message


def test_missing_class_list_is_named_too(tmp_path: Path, models_dir: Path) -> None:
    (tmp_path / "yolox_nano.onnx").symlink_to((models_dir / "yolox_nano.onnx").resolve())
    with pytest.raises(ModelFileMissing, match=r"coco_classes\.txt"):
        TorchDetector.from_models_dir(tmp_path, device="cpu")


def test_network_records_the_model_file_sha256(network, models_dir: Path) -> None:
    assert network.sha256 == hashlib.sha256((models_dir / "yolox_nano.onnx").read_bytes()).hexdigest()


def test_offline_download_fails_naming_the_url_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ModelDownloadFailed, match=re.escape(OFFICIAL_URLS["yolox_nano.onnx"])):
        download(tmp_path, "yolox_nano.onnx")
    assert list(tmp_path.iterdir()) == []


def test_check_flags_a_file_that_differs_from_sha256sums(tmp_path: Path) -> None:
    (tmp_path / "coco_classes.txt").write_text("person\n")
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  coco_classes.txt\n")
    missing, changed = check_files(tmp_path, ["yolox_nano.onnx", "coco_classes.txt"])
    assert missing.sha256 is None
    assert not missing.ok
    assert changed.sha256 is not None
    assert not changed.ok


def test_models_check_command_passes_on_the_shared_files(models_dir: Path, capsys) -> None:
    assert main(["models", "check", "--models-dir", str(models_dir)]) == 0
    assert "loads: yolox_nano, input 416x416, 80 classes" in capsys.readouterr().out


def test_models_check_command_fails_on_an_empty_directory(tmp_path: Path, capsys) -> None:
    assert main(["models", "check", "--models-dir", str(tmp_path)]) == 1
    assert "MISSING" in capsys.readouterr().out
