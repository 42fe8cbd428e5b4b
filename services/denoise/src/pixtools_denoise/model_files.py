"""Find, verify, load and download the DnCNN weights; never fall back to random weights."""

import dataclasses
import hashlib
import os
import pickle
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from pixtools_denoise.errors import InvalidWeights, MissingWeights, WeightsDownloadFailed
from pixtools_denoise.model import DnCNN

MODEL_ID = "dncnn_color_blind"
# Safetensors first: it cannot run code, so it is preferred when both files are present.
WEIGHTS_FILES = (f"{MODEL_ID}.safetensors", f"{MODEL_ID}.pth")
MODELS_DIR_ENV = "PIXTOOLS_MODELS_DIR"
# Inside this environment the models live beside the repository; run commands from the repository root.
DEFAULT_MODELS_DIR = Path("../shared/models")
# KAIR's v1.0 release carries the DnCNN colour-blind weights (see ../shared/models/SOURCES.md).
RELEASE_URL = f"https://github.com/cszn/KAIR/releases/download/v1.0/{MODEL_ID}.pth"


@dataclass(frozen=True)
class Weights:
    """A verified DnCNN state dict with the file it came from and that file's sha256."""

    model_id: str
    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]


def default_models_dir() -> Path:
    """The models directory named by PIXTOOLS_MODELS_DIR, else ../shared/models from the working directory."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def fetch_command(models_dir: Path) -> str:
    """The shell command that downloads the official weights into `models_dir`."""
    return f"pixtools-denoise models download --dir {models_dir}"


def find_weights(models_dir: Path) -> Path:
    """The first weights file present in `models_dir`, or MissingWeights naming every file looked for."""
    candidates = [models_dir.resolve() / name for name in WEIGHTS_FILES]
    for path in candidates:
        if path.is_file():
            return path
    looked_for = " or ".join(str(path) for path in candidates)
    raise MissingWeights(
        f"DnCNN weights not found: looked for {looked_for}. Fetch them with: {fetch_command(models_dir)}"
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_weights(models_dir: Path) -> Weights:
    """Load and strictly verify the DnCNN weights found in `models_dir`."""
    path = find_weights(models_dir)
    return load_weights_file(path, fix_hint=fetch_command(models_dir))


def load_weights_file(path: Path, *, fix_hint: str) -> Weights:
    """Load one `.safetensors` or `.pth` file and check it fits DnCNN exactly, or raise InvalidWeights."""
    state_dict = _read_tensors(path, fix_hint)
    problems = _layout_problems(state_dict)
    if problems:
        raise InvalidWeights(
            f"{path} is not DnCNN colour blind in KAIR's layout: {problems}. Replace it with: {fix_hint}"
        )
    return Weights(model_id=MODEL_ID, path=path, sha256=file_sha256(path), state_dict=state_dict)


def build_model(weights: Weights) -> DnCNN:
    """A DnCNN in eval mode holding `weights`, loaded with strict key checking."""
    model = DnCNN()
    model.load_state_dict(weights.state_dict, strict=True)
    return model.eval()


def download_weights(models_dir: Path, *, url: str = RELEASE_URL, timeout_s: float = 60.0) -> Weights:
    """Download the release `.pth` into `models_dir`, keeping it only if it loads strictly as DnCNN."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / f"{MODEL_ID}.pth"
    partial = models_dir / f"{MODEL_ID}.pth.part"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, partial.open("wb") as stream:
            shutil.copyfileobj(response, stream)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise WeightsDownloadFailed(
            f"could not download {url} ({reason}). Without network access, fetch that URL elsewhere "
            f"and place the file at {target.resolve()}"
        ) from error
    try:
        weights = load_weights_file(partial, fix_hint=f"a fresh download of {url}")
    except InvalidWeights:
        partial.unlink(missing_ok=True)
        raise
    # Renamed only once verified, so a broken download never sits where the service looks.
    partial.replace(target)
    return dataclasses.replace(weights, path=target.resolve())


def _read_tensors(path: Path, fix_hint: str) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            loaded: object = load_file(path)
        else:
            # weights_only refuses pickled code: a .pth file can only bring tensors and plain containers.
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, OSError, EOFError) as error:
        raise InvalidWeights(f"{path} could not be read as weights ({error}). Replace it with: {fix_hint}") from error
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise InvalidWeights(f"{path} does not hold a flat state dict of tensors. Replace it with: {fix_hint}")
    return {str(key): value for key, value in loaded.items()}


def _layout_problems(state_dict: dict[str, torch.Tensor]) -> str:
    """Describe every missing, unexpected, misshapen or non-float32 tensor; empty when the layout is exact."""
    with torch.device("meta"):  # shapes only: no memory, no random initialisation
        expected = {key: tuple(value.shape) for key, value in DnCNN().state_dict().items()}
    problems = []
    if missing := sorted(expected.keys() - state_dict.keys()):
        problems.append(f"missing keys {missing}")
    if unexpected := sorted(state_dict.keys() - expected.keys()):
        problems.append(f"unexpected keys {unexpected}")
    for key in sorted(expected.keys() & state_dict.keys()):
        tensor = state_dict[key]
        if tuple(tensor.shape) != expected[key]:
            problems.append(f"{key} has shape {tuple(tensor.shape)}, expected {expected[key]}")
        elif tensor.dtype != torch.float32:
            problems.append(f"{key} is {tensor.dtype}, expected torch.float32")
        elif not bool(torch.isfinite(tensor).all()):
            problems.append(f"{key} holds NaN or infinite values")
    return "; ".join(problems)
