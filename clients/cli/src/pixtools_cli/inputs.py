"""Reading what the user names: pipelines, image files and folders, batch files; and stable idempotency keys."""

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from pixtools_cli.errors import UsageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".avif", ".gif", ".tif", ".tiff", ".bmp"})


def load_pipeline(text: str) -> list[Any]:
    """A pipeline from JSON text, or from a file named as `@path`."""
    source = "pipeline"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as error:
            raise UsageError(f"cannot read the pipeline file {path}: {error.strerror}") from error
        source = str(path)
    try:
        pipeline = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{source} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from error
    if isinstance(pipeline, dict) and "op" in pipeline:
        pipeline = [pipeline]
    if not isinstance(pipeline, list):
        raise UsageError(
            f'{source} must be a JSON list of steps, e.g. [{{"op": "resize", "params": {{"width": 256}}}}]'
        )
    return pipeline


def find_images(paths: list[str]) -> list[Path]:
    """The image files named, and those found under the folders named (recursively), in a stable order."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {name}")
    if not found:
        raise UsageError("no images found (looked for " + ", ".join(sorted(IMAGE_SUFFIXES)) + ")")
    return list(dict.fromkeys(found))


def idempotency_key(data: bytes, pipeline: list[Any], webhook_url: str | None) -> str:
    """The same file with the same pipeline (and webhook) gets the same key, so a rerun replays its job."""
    digest = hashlib.sha256(data)
    digest.update(b"\0" + json.dumps(pipeline, sort_keys=True, separators=(",", ":")).encode())
    digest.update(b"\0" + (webhook_url or "").encode())
    return "cli-" + digest.hexdigest()


def url_key(url: str, pipeline: list[Any], webhook_url: str | None) -> str:
    """The idempotency key of a URL job: the URL, the pipeline and the webhook."""
    return idempotency_key(url.encode(), pipeline, webhook_url)


def batch_items(path: Path) -> tuple[str, Any]:
    """('csv', bytes) for a CSV of URLs, or ('urls', items) for a JSON list of URLs or {"url", "id"} objects."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    if path.suffix.lower() == ".csv":
        header = next(csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace"))), [])
        if "url" not in [column.strip().lower() for column in header]:
            raise UsageError(f"{path} needs a header row with a 'url' column (and optionally 'id')")
        return "csv", data
    try:
        items = json.loads(data)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not valid JSON: {error.msg}") from error
    if isinstance(items, dict):
        items = items.get("items")
    if not isinstance(items, list) or not items:
        raise UsageError(f'{path} must hold a list of URLs or of {{"url": ..., "id": ...}} objects')
    return "urls", items
