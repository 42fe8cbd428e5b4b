"""Turn whatever a decoder raises on hostile input into the service's own image errors."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from PIL import Image

from pixtools_imaging.errors import CorruptImage, ImageTooLarge

# What Pillow's plugins and codecs raise on malformed data (its own fuzzers expect the same family).
# MemoryError is deliberately absent: the pixel limit is checked first, so running out is a real fault.
DECODER_ERRORS: Final = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    RuntimeError,
)


def check_pixels(width: int, height: int, max_pixels: int, *, what: str = "image") -> None:
    """Refuse an image (or a planned output) of more pixels than allowed."""
    if width <= 0 or height <= 0:
        raise CorruptImage(f"{what} declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLarge(f"{what} is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise decoder failures as CorruptImage and Pillow's own bomb guard as ImageTooLarge."""
    try:
        yield
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(str(error)) from error
    except Image.UnidentifiedImageError as error:
        # Its message names a BytesIO object's address, which helps nobody reading the error.
        raise CorruptImage("the image header cannot be read") from error
    except DECODER_ERRORS as error:
        raise CorruptImage(f"cannot decode image: {error}") from error
