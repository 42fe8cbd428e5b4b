from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pixtools_denoise import InvalidWeights, MissingWeights, TorchDenoiser
from pixtools_denoise.errors import WeightsDownloadFailed
from pixtools_denoise.model_files import Weights, download_weights, file_sha256, load_weights, load_weights_file


def recorded_sha256(models_dir: Path, name: str) -> str:
    for line in (models_dir / "SHA256SUMS").read_text().splitlines():
        digest, _, file_name = line.partition("  ")
        if file_name == name:
            return digest
    raise AssertionError(f"{name} is not listed in {models_dir / 'SHA256SUMS'}")


def test_shared_weights_load_strictly_and_record_the_file_hash(weights: Weights, models_dir: Path) -> None:
    assert weights.path.name == "dncnn_color_blind.safetensors"
    assert len(weights.state_dict) == 40
    assert sum(tensor.numel() for tensor in weights.state_dict.values()) == 668_227
    assert weights.sha256 == recorded_sha256(models_dir, "dncnn_color_blind.safetensors")


def test_pth_release_file_loads_the_same_tensors(weights: Weights, models_dir: Path) -> None:
    from_pth = load_weights_file(models_dir / "dncnn_color_blind.pth", fix_hint="unused")

    assert from_pth.sha256 == recorded_sha256(models_dir, "dncnn_color_blind.pth")
    assert all(torch.equal(from_pth.state_dict[key], tensor) for key, tensor in weights.state_dict.items())


def test_missing_weights_message_names_the_file_and_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(MissingWeights) as refused:
        TorchDenoiser.from_models_dir(tmp_path)

    message = str(refused.value)
    assert str(tmp_path.resolve() / "dncnn_color_blind.safetensors") in message
    assert str(tmp_path.resolve() / "dncnn_color_blind.pth") in message
    assert f"pixtools-denoise models download --dir {tmp_path}" in message


def test_wrong_keys_are_refused_by_name(weights: Weights, tmp_path: Path) -> None:
    renamed = dict(weights.state_dict)
    renamed["body.0.weight"] = renamed.pop("model.0.weight")
    save_file(renamed, tmp_path / "dncnn_color_blind.safetensors")

    with pytest.raises(InvalidWeights, match=r"missing keys \['model.0.weight'\]; unexpected keys \['body.0.weight'\]"):
        load_weights(tmp_path)


def test_misshapen_tensor_is_refused(weights: Weights, tmp_path: Path) -> None:
    wrong = dict(weights.state_dict)
    wrong["model.38.weight"] = torch.zeros(1, 64, 3, 3)  # a greyscale DnCNN's last layer
    save_file(wrong, tmp_path / "dncnn_color_blind.safetensors")

    with pytest.raises(InvalidWeights, match=r"model.38.weight has shape \(1, 64, 3, 3\), expected \(3, 64, 3, 3\)"):
        load_weights(tmp_path)


class NotATensor:
    pass


def test_pickled_code_in_a_pth_file_is_refused(weights: Weights, tmp_path: Path) -> None:
    torch.save({"model.0.weight": NotATensor()}, tmp_path / "dncnn_color_blind.pth")

    with pytest.raises(InvalidWeights, match="could not be read"):
        load_weights(tmp_path)


def test_corrupt_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "dncnn_color_blind.safetensors").write_bytes(b"not a safetensors file")

    with pytest.raises(InvalidWeights, match="pixtools-denoise models download"):
        load_weights(tmp_path)


def test_file_hash_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "bytes"
    path.write_bytes(b"abc")

    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_download_keeps_a_file_that_loads_strictly(models_dir: Path, weights: Weights, tmp_path: Path) -> None:
    source = (models_dir / "dncnn_color_blind.pth").resolve()

    downloaded = download_weights(tmp_path / "models", url=source.as_uri())

    assert downloaded.path == (tmp_path / "models" / "dncnn_color_blind.pth").resolve()
    assert downloaded.path.is_file()
    assert downloaded.state_dict.keys() == weights.state_dict.keys()
    assert [path.name for path in (tmp_path / "models").iterdir()] == ["dncnn_color_blind.pth"]


def test_unreachable_download_fails_naming_the_url(tmp_path: Path) -> None:
    url = (tmp_path / "absent.pth").as_uri()

    with pytest.raises(WeightsDownloadFailed, match=f"could not download {url}"):
        download_weights(tmp_path / "models", url=url)
    assert list((tmp_path / "models").iterdir()) == []


def test_download_of_something_else_is_refused_and_removed(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html>not weights</html>")

    with pytest.raises(InvalidWeights):
        download_weights(tmp_path / "models", url=page.as_uri())
    assert list((tmp_path / "models").iterdir()) == []
