"""Bring every decoded image to upright 8-bit L, LA, RGB or RGBA with a matching ICC profile."""

from __future__ import annotations

import functools
import io
from typing import Final, cast

from PIL import Image, ImageCms

NORMAL_MODES: Final = {"L", "LA", "RGB", "RGBA"}
ALPHA_MODES: Final = {"LA", "RGBA", "PA", "RGBa", "La"}

_TRANSPOSE_FOR_ORIENTATION: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes that map straight onto a normal one without any scaling of values.
_DIRECT: Final[dict[str, str]] = {
    "1": "L",
    "PA": "RGBA",
    "RGBX": "RGB",
    "RGBa": "RGBA",
    "La": "LA",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
}
# The colour space an ICC profile describes, at bytes 16-20 of its header, for each normal mode.
_PROFILE_SPACE: Final[dict[str, bytes]] = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}


def swaps_axes(orientation: int) -> bool:
    """Say whether an EXIF orientation turns the image a quarter turn, swapping width and height."""
    return orientation in (5, 6, 7, 8)


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Turn and flip the pixels as the EXIF orientation says, so that they need no tag to display upright."""
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return image if method is None else image.transpose(method)


def has_alpha(image: Image.Image) -> bool:
    """Say whether the image carries transparency, as a channel or as a transparent palette entry or colour."""
    return image.mode in ALPHA_MODES or "transparency" in image.info


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _cmyk_to_rgb(image: Image.Image, icc_profile: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Convert through the embedded CMYK profile when it is usable; the naive formula is far off for print CMYK."""
    if icc_profile:
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(image, source_profile, _srgb_profile(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken profile should not sink readable pixels
        else:
            if converted is not None:
                return converted, _srgb_profile().tobytes()
    return image.convert("RGB"), None


def _extrema(image: Image.Image) -> tuple[float, float]:
    # A single-band image's extrema are one (low, high) pair, not one per band.
    return cast(tuple[float, float], image.getextrema())


def _scale_to_8_bit(image: Image.Image) -> Image.Image:
    """Map 16-bit, 32-bit integer and float greyscale onto 0-255 instead of clipping."""
    if image.mode == "F":
        low, high = _extrema(image)
        # Floats are usually 0-1 scene values; anything else is already on a 0-255 scale.
        scale = 255.0 if low >= 0.0 and high <= 1.0 else 1.0
        return image.point(lambda value: value * scale).convert("L")
    as_int = image if image.mode == "I" else image.convert("I")
    _, high = _extrema(as_int)
    scale = 1 / 256 if high > 255 else 1.0
    return as_int.point(lambda value: value * scale).convert("L")


def _profile_space(icc_profile: bytes) -> bytes:
    return icc_profile[16:20] if len(icc_profile) >= 128 else b""


def normalise_mode(image: Image.Image, icc_profile: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Convert to L/LA/RGB/RGBA 8-bit; return the image and the ICC profile that still describes it, if any."""
    if image.mode == "CMYK":
        return _cmyk_to_rgb(image, icc_profile)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert(image.mode + "A")  # a tRNS colour key becomes a real alpha channel
    elif image.mode in _DIRECT:
        image = image.convert(_DIRECT[image.mode])
    elif image.mode not in NORMAL_MODES:
        image = _scale_to_8_bit(image)
    if icc_profile and _profile_space(icc_profile) != _PROFILE_SPACE[image.mode]:
        icc_profile = None  # a profile for another colour space would mislead every viewer
    return image, icc_profile
