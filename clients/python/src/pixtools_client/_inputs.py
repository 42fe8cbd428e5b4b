"""What a caller may pass as an image, and the names outputs are saved under."""

import mimetypes
import os
from pathlib import Path
from typing import BinaryIO

ImageInput = str | os.PathLike[str] | bytes | BinaryIO
"""A path, the bytes themselves, or a binary file object."""

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/avif": "avif",
    "image/gif": "gif",
    "image/tiff": "tiff",
    "image/bmp": "bmp",
    "application/json": "json",
}


def read_image(image: ImageInput, name: str | None = None) -> tuple[str, bytes]:
    """The file name and bytes to upload; read once, so that a retried upload sends the same bytes."""
    if isinstance(image, bytes):
        return name or "image", image
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return name or path.name, path.read_bytes()
    data = image.read()
    return name or Path(str(getattr(image, "name", "image"))).name, data


def extension_for(content_type: str) -> str:
    """A file extension for a media type ('bin' when unknown)."""
    known = _EXTENSIONS.get(content_type.split(";")[0].strip().lower())
    if known:
        return known
    guessed = mimetypes.guess_extension(content_type)
    return guessed.lstrip(".") if guessed else "bin"


def output_filename(step: str, name: str, content_type: str) -> str:
    """`<step>-<name>.<ext>`: the name an output is saved under in a directory."""
    safe_step = step.replace("/", "_").replace(os.sep, "_")
    return f"{safe_step}-{name}.{extension_for(content_type)}"
