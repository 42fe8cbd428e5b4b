"""Magic-byte sniffing and the formats the service reads and writes."""

from __future__ import annotations

from typing import Final

CONTENT_TYPES: Final[dict[str, str]] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
}

# Pillow is only ever allowed the plugin matching the sniffed format, so hostile bytes cannot
# reach another plugin (EPS would even start Ghostscript).
PILLOW_FORMATS: Final[dict[str, tuple[str, ...]]] = {
    "jpeg": ("JPEG",),
    "png": ("PNG",),
    "gif": ("GIF",),
    "webp": ("WEBP",),
    "avif": ("AVIF",),
    "tiff": ("TIFF",),
    "bmp": ("BMP",),
}

# gif, bmp and tiff are read but not written: they come out as lossless PNG.
OUTPUT_FAMILY: Final[dict[str, str]] = {
    "jpeg": "jpeg",
    "png": "png",
    "webp": "webp",
    "avif": "avif",
    "gif": "png",
    "bmp": "png",
    "tiff": "png",
}

_AVIF_BRANDS: Final = {b"avif", b"avis"}
_HEIF_BRANDS: Final = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
# The sizes of the BMP info headers (core, v2-v5 and OS/2); "BM" alone also starts plain text.
_BMP_HEADER_SIZES: Final = {12, 16, 40, 52, 56, 64, 108, 124}


def _ftyp_brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO-BMFF ftyp box, or nothing if there is none."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return set()
    box_size = min(int.from_bytes(data[0:4], "big"), len(data), 4096)
    brands = {data[8:12]}
    brands.update(data[offset : offset + 4] for offset in range(16, box_size - 3, 4))
    return brands


def sniff(data: bytes) -> str | None:
    """Name the image format from its magic bytes (jpeg, png, gif, webp, avif, heic, tiff, bmp), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    brands = _ftyp_brands(data)
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIF_BRANDS:
        return "heic"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if len(data) >= 18 and data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    return None
