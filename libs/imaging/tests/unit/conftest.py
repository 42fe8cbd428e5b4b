"""Images for the imaging unit tests, all made in code."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms
from PIL.TiffImagePlugin import IFDRational


class ImageFactory:
    """Builds test images and their encoded bytes."""

    def picture(self, width: int = 64, height: int = 48, mode: str = "RGB") -> Image.Image:
        """A smooth colour gradient, converted to the mode asked for."""
        red = Image.linear_gradient("L").resize((width, height))
        green = Image.linear_gradient("L").rotate(90).resize((width, height))
        blue = Image.radial_gradient("L").resize((width, height))
        return Image.merge("RGB", (red, green, blue)).convert(mode)

    def halves(self, width: int, height: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
        """Two flat colours side by side, to see where pixels end up."""
        image = Image.new("RGB", (width, height), right)
        image.paste(left, (0, 0, width // 2, height))
        return image

    def encode(self, image: Image.Image, format_name: str, **options: object) -> bytes:
        """Encode with Pillow, as a client's camera or editor would."""
        buffer = io.BytesIO()
        image.save(buffer, format_name, **options)
        return buffer.getvalue()

    def jpeg(self, width: int = 64, height: int = 48, **options: object) -> bytes:
        """A gradient JPEG."""
        return self.encode(self.picture(width, height), "JPEG", **options)

    def png(self, width: int = 64, height: int = 48, mode: str = "RGB") -> bytes:
        """A gradient PNG."""
        return self.encode(self.picture(width, height, mode), "PNG")

    def exif(self, *, orientation: int | None = None, gps: bool = False) -> Image.Exif:
        """EXIF with a camera make, optionally an orientation and a GPS position (Sydney Opera House, 58 m)."""
        exif = Image.Exif()
        exif[ExifTags.Base.Make] = "PixTools Camera"
        if orientation is not None:
            exif[ExifTags.Base.Orientation] = orientation
        if gps:
            position = exif.get_ifd(ExifTags.IFD.GPSInfo)
            position[ExifTags.GPS.GPSLatitudeRef] = "S"
            position[ExifTags.GPS.GPSLatitude] = (IFDRational(33), IFDRational(51), IFDRational(216, 4))
            position[ExifTags.GPS.GPSLongitudeRef] = "E"
            position[ExifTags.GPS.GPSLongitude] = (IFDRational(151), IFDRational(12), IFDRational(366, 10))
            position[ExifTags.GPS.GPSAltitudeRef] = b"\x00"
            position[ExifTags.GPS.GPSAltitude] = IFDRational(58)
        return exif

    def open(self, data: bytes) -> Image.Image:
        """Decode output bytes fully, for assertions."""
        image = Image.open(io.BytesIO(data))
        image.load()
        return image

    def srgb_profile(self) -> bytes:
        """An sRGB ICC profile."""
        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

    def raw_png(self, width: int, height: int, *, bit_depth: int, colour_type: int, pixels: bytes = b"") -> bytes:
        """A PNG written chunk by chunk, for bit depths Pillow cannot write and for lying headers."""

        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")
        )


@pytest.fixture
def images() -> ImageFactory:
    """Build test images in code."""
    return ImageFactory()
