"""Encoders for the output formats, with speed settings chosen by bench/imaging/bench_encoders.py."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Final

from PIL import Image, PngImagePlugin

from pixtools_imaging._formats import CONTENT_TYPES

DEFAULT_QUALITY: Final[dict[str, int]] = {"jpeg": 85, "webp": 80, "avif": 60}
# Measured on COCO photos (bench/imaging/RESULTS.md): each is the knee of its time/size curve.
WEBP_METHOD: Final = 2  # ~2x faster than the default 4 for ~2% more bytes
AVIF_SPEED: Final = 9  # ~4x faster than 8 for ~5% more bytes
PNG_COMPRESS_LEVEL: Final = 3  # ~2.5x faster than the default 6 on photos, ~5-20% more bytes
# optimize and progressive cost 2.6x and 6x the JPEG encode time for 2-6% fewer bytes.
JPEG_OPTIONS: Final = {"optimize": False, "progressive": False}
_PILLOW_NAMES: Final = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}
_JPEG_SEGMENT_LIMIT: Final = 65000  # an APP1 segment holds at most 65533 bytes including its header
_FLATTEN_BACKGROUND: Final = "white"  # transparent logos and icons are drawn for light backgrounds
_XMP_ORIENTATION: Final = re.compile(rb"(tiff:Orientation(?:=\"|>))[0-9]")


@dataclass(frozen=True)
class EncodedImage:
    """An encoded image ready to store: its bytes, content type, format and size."""

    data: bytes
    content_type: str
    format: str
    width: int
    height: int


def upright_xmp(xmp: bytes) -> bytes:
    """Reset an XMP orientation to 1, because the pixels have already been turned upright."""
    return _XMP_ORIENTATION.sub(rb"\g<1>1", xmp)


def _flatten(image: Image.Image) -> Image.Image:
    """Composite a transparent image onto the background, for formats without alpha."""
    opaque_mode = image.mode[:-1]
    background = Image.new(opaque_mode, image.size, _FLATTEN_BACKGROUND)
    background.paste(image.convert(opaque_mode), mask=image.getchannel("A"))
    return background


def _suited(image: Image.Image, output_format: str) -> Image.Image:
    """Convert to a mode the encoder takes: JPEG has no alpha, WebP and AVIF have no grey with alpha."""
    if output_format == "jpeg" and image.mode in ("LA", "RGBA"):
        return _flatten(image)
    if output_format == "webp" and image.mode in ("L", "LA"):
        return image.convert("RGBA" if image.mode == "LA" else "RGB")
    if output_format == "avif" and image.mode == "LA":
        return image.convert("RGBA")
    return image


def _options(output_format: str, quality: int | None, exif: bytes | None, xmp: bytes | None) -> dict[str, object]:
    """Encoder keyword arguments for one format."""
    if output_format == "png":
        text = PngImagePlugin.PngInfo()
        if xmp:
            text.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
        return {"compress_level": PNG_COMPRESS_LEVEL, "pnginfo": text, "exif": exif or b""}
    options: dict[str, object] = {"quality": quality or DEFAULT_QUALITY[output_format]}
    if output_format == "jpeg":
        # Oversized segments cannot be written into a JPEG at all; losing them beats failing the image.
        exif = exif if exif and len(exif) <= _JPEG_SEGMENT_LIMIT else None
        xmp = xmp if xmp and len(xmp) <= _JPEG_SEGMENT_LIMIT else None
        options.update(JPEG_OPTIONS)
    elif output_format == "webp":
        options["method"] = WEBP_METHOD
    else:
        options["speed"] = AVIF_SPEED
    return options | {"exif": exif or b"", "xmp": xmp or b""}


def encode(
    image: Image.Image,
    output_format: str,
    *,
    quality: int | None = None,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    xmp: bytes | None = None,
) -> EncodedImage:
    """Encode normalised pixels; metadata comes only from the arguments, never from image.info."""
    suited = _suited(image, output_format)
    suited.info = {}
    options = _options(output_format, quality, exif, xmp and upright_xmp(xmp))
    if icc_profile:
        options["icc_profile"] = icc_profile
    buffer = io.BytesIO()
    suited.save(buffer, _PILLOW_NAMES[output_format], **options)
    return EncodedImage(buffer.getvalue(), CONTENT_TYPES[output_format], output_format, *suited.size)
