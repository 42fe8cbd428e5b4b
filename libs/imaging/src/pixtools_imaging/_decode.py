"""Open images guardedly, read their headers, and decode them into upright normalised pixels."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image

from pixtools_imaging._exif import orientation_of, read_exif
from pixtools_imaging._formats import CONTENT_TYPES, PILLOW_FORMATS, sniff
from pixtools_imaging._guard import check_pixels, translate_errors
from pixtools_imaging._normalise import apply_orientation, normalise_mode, swaps_axes
from pixtools_imaging.errors import UnsupportedImage


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says: its format, content type and upright size."""

    format: str
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Decoded:
    """Upright 8-bit pixels in a normal mode, with the metadata an output may carry."""

    format: str
    image: Image.Image
    icc_profile: bytes | None
    exif: Image.Exif | None
    xmp: bytes | None


@contextmanager
def open_image(data: bytes, *, max_pixels: int) -> Iterator[tuple[str, Image.Image]]:
    """Open lazily with only the sniffed format's plugin, refuse oversized headers, translate decoder errors."""
    image_format = sniff(data)
    if image_format is None:
        raise UnsupportedImage("the data is not an image in a supported format")
    if image_format not in PILLOW_FORMATS:
        raise UnsupportedImage(f"{image_format} images are not supported")
    with translate_errors(), Image.open(io.BytesIO(data), formats=PILLOW_FORMATS[image_format]) as image:
        check_pixels(image.width, image.height, max_pixels)
        yield image_format, image


def header_orientation(image: Image.Image, image_format: str) -> int:
    """The EXIF orientation known without decoding pixels (a PNG's eXIf chunk after the pixels is not)."""
    if image_format == "png" and "exif" not in image.info:
        return 1  # Pillow would decode the whole PNG to look for a trailing eXIf chunk
    return orientation_of(read_exif(image))


def probe(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Sniff the format and read the upright size from the header, without decoding pixels."""
    with open_image(data, max_pixels=max_pixels) as (image_format, image):
        width, height = image.size
        if swaps_axes(header_orientation(image, image_format)):
            width, height = height, width
    return ImageInfo(image_format, CONTENT_TYPES[image_format], width, height)


def _xmp_bytes(image: Image.Image) -> bytes | None:
    xmp = image.info.get("xmp")
    if isinstance(xmp, str):
        return xmp.encode("utf-8")
    return xmp if isinstance(xmp, bytes) and xmp else None


def decode(image: Image.Image, image_format: str, *, at_least: tuple[int, int] | None = None) -> Decoded:
    """Decode the first frame upright and normalised; a JPEG may decode smaller but never below `at_least`."""
    if at_least is not None and image_format == "jpeg":
        width, height = at_least
        if swaps_axes(header_orientation(image, image_format)):
            width, height = height, width
        image.draft(None, (width, height))  # libjpeg scales by 1/2, 1/4 or 1/8 while decoding: far less work
    image.load()
    exif = read_exif(image)
    icc_profile = image.info.get("icc_profile") or None
    xmp = _xmp_bytes(image)
    normal, icc_profile = normalise_mode(image, icc_profile)
    upright = apply_orientation(normal, orientation_of(exif))
    # Metadata travels only through Decoded; encoders fall back to image.info and would leak it otherwise.
    upright.info = {}
    return Decoded(image_format, upright, icc_profile, exif, xmp)


def load(data: bytes, *, max_pixels: int) -> Decoded:
    """Decode a whole image upright and normalised, for stages that work on pixels (denoise, detect)."""
    with open_image(data, max_pixels=max_pixels) as (image_format, image):
        decoded = decode(image, image_format)
        # Closing the opened image frees its pixels; keep a copy when normalising returned the same object.
        if decoded.image is image:
            return Decoded(image_format, image.copy(), decoded.icc_profile, decoded.exif, decoded.xmp)
        return decoded
