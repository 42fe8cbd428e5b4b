"""The metadata operation: format, size, colour and EXIF (with GPS) as JSON."""

from __future__ import annotations

from pydantic import JsonValue

from pixtools_imaging._decode import open_image
from pixtools_imaging._exif import gps_position, orientation_of, read_exif, readable_exif
from pixtools_imaging._formats import CONTENT_TYPES
from pixtools_imaging._normalise import has_alpha, swaps_axes


def extract_metadata(data: bytes, *, max_pixels: int) -> dict[str, JsonValue]:
    """Describe the image: format, upright size, source mode, alpha, orientation, EXIF, GPS and ICC presence."""
    with open_image(data, max_pixels=max_pixels) as (image_format, image):
        width, height = image.size
        mode, alpha = image.mode, has_alpha(image)
        if image_format == "jpeg":
            image.draft(None, (1, 1))  # 1/8-scale decoding still reads every byte, so truncation is caught cheaply
        image.load()  # metadata of an image that does not decode would be a lie
        exif = read_exif(image)
        orientation = orientation_of(exif)
        return {
            "format": image_format,
            "content_type": CONTENT_TYPES[image_format],
            "width": height if swaps_axes(orientation) else width,
            "height": width if swaps_axes(orientation) else height,
            "mode": mode,
            "has_alpha": alpha,
            "orientation": orientation,
            "icc_profile": bool(image.info.get("icc_profile")),
            "exif": readable_exif(exif) if exif is not None else {},
            "gps": gps_position(exif) if exif is not None else None,
        }
