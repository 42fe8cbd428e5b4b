"""Image codecs and CPU operations shared by the stage services: sniff, probe, load, encode, resize, convert, metadata.

Every function is pure and synchronous (bytes in, bytes, pixels or JSON out); callers run them off the event loop.
Hostile input only ever raises the ImageError family.
"""

from pixtools_imaging._decode import Decoded, ImageInfo, load, probe
from pixtools_imaging._encode import EncodedImage, encode
from pixtools_imaging._formats import OUTPUT_FAMILY, sniff
from pixtools_imaging._metadata import extract_metadata
from pixtools_imaging._operations import convert, resize
from pixtools_imaging.errors import CorruptImage, ImageError, ImageTooLarge, UnsupportedImage

__all__ = [
    "OUTPUT_FAMILY",
    "CorruptImage",
    "Decoded",
    "EncodedImage",
    "ImageError",
    "ImageInfo",
    "ImageTooLarge",
    "UnsupportedImage",
    "convert",
    "encode",
    "extract_metadata",
    "load",
    "probe",
    "resize",
    "sniff",
]
