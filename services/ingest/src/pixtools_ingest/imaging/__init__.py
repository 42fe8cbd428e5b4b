"""CPU image operations of the ingest service: sniff, probe, resize, convert and extract metadata.

Every function is pure and synchronous (bytes in, bytes or JSON out); callers run them off the event loop.
Hostile input only ever raises the ImageError family.
"""

from pixtools_ingest.imaging._decode import ImageInfo, probe
from pixtools_ingest.imaging._encode import EncodedImage
from pixtools_ingest.imaging._formats import sniff
from pixtools_ingest.imaging._metadata import extract_metadata
from pixtools_ingest.imaging._operations import convert, resize
from pixtools_ingest.imaging.errors import CorruptImage, ImageError, ImageTooLarge, UnsupportedImage

__all__ = [
    "CorruptImage",
    "EncodedImage",
    "ImageError",
    "ImageInfo",
    "ImageTooLarge",
    "UnsupportedImage",
    "convert",
    "extract_metadata",
    "probe",
    "resize",
    "sniff",
]
