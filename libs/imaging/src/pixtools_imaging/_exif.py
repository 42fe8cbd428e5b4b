"""EXIF as the service reads it (orientation, readable tags, GPS) and writes it back (upright, no stale layout)."""

from __future__ import annotations

import math
from numbers import Rational
from typing import Final

from PIL import ExifTags, Image
from pydantic import JsonValue

from pixtools_imaging._guard import DECODER_ERRORS

ORIENTATION: Final = ExifTags.Base.Orientation
_MAKER_NOTE: Final = ExifTags.Base.MakerNote
_POINTERS: Final = {ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo, ExifTags.IFD.Interop, ExifTags.IFD.IFD1}
# TIFF layout tags describe the source file's pixels, not the picture; after decoding they are stale.
_LAYOUT: Final = {256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339}
# Payloads with their own place in the output (XMP, IPTC, ICC) or none (JPEG thumbnail offsets).
_EMBEDDED: Final = {513, 514, 700, 33723, 34675}
_PIXEL_DIMENSIONS: Final = {ExifTags.Base.ExifImageWidth, ExifTags.Base.ExifImageHeight}
_MAX_TEXT: Final = 1024
_MAX_BYTES: Final = 64
_MAX_ITEMS: Final = 256


def read_exif(image: Image.Image) -> Image.Exif | None:
    """The image's EXIF, or None when it has none or it cannot be parsed (the pixels may still be fine)."""
    try:
        exif = image.getexif()
    except DECODER_ERRORS:
        return None
    return exif if len(exif) else None


def orientation_of(exif: Image.Exif | None) -> int:
    """The EXIF orientation 1-8, treating absent or nonsensical values as upright."""
    value = exif.get(ORIENTATION) if exif is not None else None
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def exif_for_output(exif: Image.Exif) -> bytes | None:
    """Serialise EXIF for an upright re-encoded image (orientation 1, no stale layout tags); None if unwritable."""
    # An image is still worth delivering when its EXIF cannot be written back.
    try:
        for tag in (_LAYOUT | _EMBEDDED) & set(exif):
            del exif[tag]
        exif[ORIENTATION] = 1
        details = exif.get_ifd(ExifTags.IFD.Exif)
        for tag in _PIXEL_DIMENSIONS & set(details):
            del details[tag]
        return exif.tobytes()
    except DECODER_ERRORS:
        return None


def _json_safe(value: object) -> JsonValue:
    """Turn an EXIF value into JSON: rationals to floats, text trimmed, binary as a short hex prefix."""
    if isinstance(value, bool | int | str):
        return value.strip("\x00 ")[:_MAX_TEXT] if isinstance(value, str) else value
    if isinstance(value, Rational):
        return None if value.denominator == 0 else _finite(float(value))
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, bytes):
        text = value.rstrip(b"\x00")
        if text.isascii() and all(32 <= byte < 127 for byte in text):
            return text.decode("ascii")[:_MAX_TEXT]
        return value[:_MAX_BYTES].hex() + ("..." if len(value) > _MAX_BYTES else "")
    if isinstance(value, tuple | list):
        return [_json_safe(item) for item in value[:_MAX_ITEMS]]
    return None


def _finite(number: float) -> float | None:
    return number if math.isfinite(number) else None


def _named(tags: dict[int, object], names: dict[int, str]) -> dict[str, JsonValue]:
    skipped = _POINTERS | _LAYOUT | _EMBEDDED | {_MAKER_NOTE}
    return {names.get(tag, f"Tag0x{tag:04X}"): _json_safe(value) for tag, value in tags.items() if tag not in skipped}


def _sub_ifd(exif: Image.Exif, pointer: int) -> dict[int, object]:
    try:
        return dict(exif.get_ifd(pointer))
    except DECODER_ERRORS:
        return {}  # a broken sub-IFD loses its own tags, not the whole image


def readable_exif(exif: Image.Exif) -> dict[str, JsonValue]:
    """The main and Exif IFD tags by their standard names, as JSON-safe values; maker notes are left out."""
    readable = _named(dict(exif), ExifTags.TAGS)
    readable.update(_named(_sub_ifd(exif, ExifTags.IFD.Exif), ExifTags.TAGS))
    return readable


def _number(value: object) -> float | None:
    if isinstance(value, Rational):
        return None if value.denominator == 0 else float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(float(value))
    return None


def _reference(value: object) -> str:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return text.strip("\x00 ").upper()


def _degrees(parts: object, reference: object, negative: str, limit: float) -> float | None:
    """Degrees, minutes and seconds to signed decimal degrees; None when malformed or out of range."""
    if not isinstance(parts, tuple) or not 1 <= len(parts) <= 3:
        return None
    numbers = [_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    degrees = sum(number / 60**index for index, number in enumerate(numbers) if number is not None)
    if _reference(reference) == negative:
        degrees = -degrees
    return round(degrees, 7) if abs(degrees) <= limit else None


def gps_position(exif: Image.Exif) -> dict[str, JsonValue] | None:
    """Latitude and longitude in signed decimal degrees and altitude in metres, for whichever are present."""
    gps = _sub_ifd(exif, ExifTags.IFD.GPSInfo)
    latitude = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S", 90.0)
    longitude = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W", 180.0)
    altitude = _number(gps.get(ExifTags.GPS.GPSAltitude))
    if altitude is not None:
        below_sea_level = gps.get(ExifTags.GPS.GPSAltitudeRef) in (1, b"\x01")
        altitude = round(-altitude if below_sea_level else altitude, 2)
    position: dict[str, JsonValue] = {
        name: value
        for name, value in (("latitude", latitude), ("longitude", longitude), ("altitude", altitude))
        if value is not None
    }
    return position or None
