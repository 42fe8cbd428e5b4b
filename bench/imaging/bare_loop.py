"""The bare image loop: decode a JPEG and encode WebP q80, with nothing around it.

The pipeline benchmark divides its throughput by this loop's to show what the service adds.
The encoder settings match pixtools_imaging's WebP defaults (quality 80, method 2).
"""

from __future__ import annotations

import io
import time

from PIL import Image

WEBP_QUALITY = 80
WEBP_METHOD = 2


def convert_once(jpeg_bytes: bytes) -> bytes:
    """Decode one JPEG and encode it as WebP q80."""
    with Image.open(io.BytesIO(jpeg_bytes)) as image:
        image.load()
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return buffer.getvalue()


def bare_convert_loop(jpeg_bytes: bytes, n: int) -> float:
    """Run the decode-JPEG, encode-WebP-q80 loop n times on one thread and return the seconds taken."""
    start = time.perf_counter()
    for _ in range(n):
        convert_once(jpeg_bytes)
    return time.perf_counter() - start
