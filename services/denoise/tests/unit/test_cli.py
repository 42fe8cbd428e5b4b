from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixtools_denoise.cli import main
from pixtools_denoise.evaluation import load_rgb


def test_models_check_reports_the_verified_file(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "check", "--dir", str(models_dir)]) == 0

    assert "loads strictly as dncnn_color_blind, sha256 " in capsys.readouterr().out


def test_models_check_without_weights_fails_with_the_fetch_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "check", "--dir", str(tmp_path)]) == 1

    assert f"Fetch them with: pixtools-denoise models download --dir {tmp_path}" in capsys.readouterr().err


def test_eval_prints_noisy_and_denoised_psnr_per_sigma(
    models_dir: Path, cbsd68_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crop = load_rgb(sorted(cbsd68_dir.glob("*.png"))[0])[100:164, 100:164]
    Image.fromarray(np.ascontiguousarray(crop)).save(tmp_path / "crop.png")

    arguments = ["eval", "--data", str(tmp_path), "--sigma", "25", "--sigma", "50", "--tile-size", "64"]
    status = main([*arguments, "--models-dir", str(models_dir)])

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0].startswith("sigma 25: 1 images, noisy ")
    assert lines[0].endswith("dB (fp32, cpu)")
    assert lines[1].startswith("sigma 50: 1 images, noisy ")
    assert lines[2].startswith("model dncnn_color_blind, weights sha256 ")
