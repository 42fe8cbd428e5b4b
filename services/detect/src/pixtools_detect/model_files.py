"""The models directory: finding, checking and downloading the official YOLOX release files."""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pixtools_detect.errors import ModelDownloadFailed, ModelFileMissing

DEFAULT_MODEL_FILE = "yolox_nano.onnx"
DEFAULT_CLASSES_FILE = "coco_classes.txt"
MODELS_DIR_ENV = "PIXTOOLS_MODELS_DIR"

_MEGVII_RELEASE = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0"
# Megvii publishes the ONNX exports as release assets; the class list is not among them, so it comes from the
# repository SOURCES.md names for it (same 80 names, in model output order).
OFFICIAL_URLS: dict[str, str] = {
    "yolox_nano.onnx": f"{_MEGVII_RELEASE}/yolox_nano.onnx",
    "yolox_tiny.onnx": f"{_MEGVII_RELEASE}/yolox_tiny.onnx",
    "yolox_s.onnx": f"{_MEGVII_RELEASE}/yolox_s.onnx",
    "yolox_m.onnx": f"{_MEGVII_RELEASE}/yolox_m.onnx",
    "yolox_l.onnx": f"{_MEGVII_RELEASE}/yolox_l.onnx",
    "coco_classes.txt": (
        "https://raw.githubusercontent.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/main/model/coco_classes.txt"
    ),
}
_DOWNLOAD_COMMAND = "pixtools-detect models download --models-dir {models_dir}"


def default_models_dir() -> Path:
    """The models directory from PIXTOOLS_MODELS_DIR, else ../shared/models seen from the working directory."""
    return Path(os.environ.get(MODELS_DIR_ENV, "../shared/models"))


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(models_dir: Path, name: str) -> Path:
    """The path of a model file, or ModelFileMissing naming the file, the URL and the command that fetches it."""
    path = models_dir / name
    if path.is_file():
        return path
    source = OFFICIAL_URLS.get(name, "no official URL is known for it; copy it there by hand")
    raise ModelFileMissing(
        f"detect model file {name!r} is missing from {models_dir.resolve()} (looked for {path}). "
        f"Run `{_DOWNLOAD_COMMAND.format(models_dir=models_dir)}` to fetch it from {source}, "
        f"or point {MODELS_DIR_ENV} at a directory that has it. The service never runs without its weights."
    )


def download(models_dir: Path, name: str, *, force: bool = False, timeout_s: float = 60.0) -> Path:
    """Fetch one official file into the models directory atomically; fail clearly, naming the URL, when offline."""
    url = OFFICIAL_URLS.get(name)
    if url is None:
        raise ModelDownloadFailed(f"no official download for {name!r}; known files: {', '.join(OFFICIAL_URLS)}")
    target = models_dir / name
    if target.is_file() and not force:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    # A partial download must never look like a model file, so it lands under a temporary name first.
    with tempfile.NamedTemporaryFile(dir=models_dir, prefix=f".{name}.", delete=False) as partial:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                shutil.copyfileobj(response, partial)
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            Path(partial.name).unlink(missing_ok=True)
            raise ModelDownloadFailed(
                f"could not download {url}: {error}. Are you offline? Fetch it by hand into {target}."
            ) from error
    Path(partial.name).replace(target)
    return target


@dataclass(frozen=True)
class FileCheck:
    """One model file's state: present or not, its digest, and whether it matches SHA256SUMS when listed there."""

    name: str
    path: Path
    sha256: str | None
    expected_sha256: str | None

    @property
    def ok(self) -> bool:
        """Present, and matching SHA256SUMS when the directory lists it."""
        return self.sha256 is not None and self.expected_sha256 in (None, self.sha256)


def expected_digests(models_dir: Path) -> dict[str, str]:
    """Digests listed in the directory's SHA256SUMS (`sha256sum` format), if it has one."""
    sums = models_dir / "SHA256SUMS"
    if not sums.is_file():
        return {}
    listed: dict[str, str] = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition(" ")
        if digest and name:
            listed[name.strip().lstrip("*")] = digest
    return listed


def check_files(models_dir: Path, names: list[str]) -> list[FileCheck]:
    """Check each named file in the models directory."""
    expected = expected_digests(models_dir)
    checks = []
    for name in names:
        path = models_dir / name
        digest = sha256_of(path) if path.is_file() else None
        checks.append(FileCheck(name, path, digest, expected.get(name)))
    return checks
