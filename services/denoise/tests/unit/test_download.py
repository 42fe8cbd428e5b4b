from pathlib import Path

import pytest

from pixtools_denoise import InvalidWeights, Weights
from pixtools_denoise.download import download_weights
from pixtools_denoise.errors import WeightsDownloadFailed


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
