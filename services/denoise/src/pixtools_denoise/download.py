"""Fetch the official DnCNN release file for users outside this environment, and verify it loads strictly."""

import dataclasses
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from pixtools_denoise.errors import InvalidWeights, WeightsDownloadFailed
from pixtools_denoise.weights import MODEL_ID, Weights, load_weights_file

# KAIR's v1.0 release carries the DnCNN colour-blind weights (see ../shared/models/SOURCES.md).
RELEASE_URL = f"https://github.com/cszn/KAIR/releases/download/v1.0/{MODEL_ID}.pth"


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
