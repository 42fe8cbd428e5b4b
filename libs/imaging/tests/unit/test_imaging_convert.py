"""Convert: every output format, quality, metadata handling and the normalisation of unusual inputs."""

from __future__ import annotations

import pytest
from PIL import ExifTags, Image

from pixtools_contracts import ConvertParams
from pixtools_imaging import convert

LIMIT = 50_000_000
RED, BLUE = (255, 0, 0), (0, 0, 255)


def close_to(actual, expected, tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


@pytest.mark.parametrize(
    ("output_format", "content_type"),
    [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp"), ("avif", "image/avif")],
)
def test_convert_produces_each_format_that_decodes_back(images, output_format, content_type) -> None:
    source = images.encode(images.halves(64, 48, RED, BLUE), "PNG")

    result = convert(source, ConvertParams(format=output_format), max_pixels=LIMIT)

    output = images.open(result.data)
    assert (result.format, result.content_type) == (output_format, content_type)
    assert output.format == output_format.upper()
    assert output.size == (result.width, result.height) == (64, 48)
    assert close_to(output.convert("RGB").getpixel((8, 24)), RED)
    assert close_to(output.convert("RGB").getpixel((56, 24)), BLUE)


@pytest.mark.parametrize("output_format", ["jpeg", "webp", "avif"])
def test_lower_quality_gives_smaller_output(images, output_format) -> None:
    source = images.jpeg(256, 192, quality=95)

    low = convert(source, ConvertParams(format=output_format, quality=20), max_pixels=LIMIT)
    high = convert(source, ConvertParams(format=output_format, quality=95), max_pixels=LIMIT)

    assert len(low.data) < len(high.data)


def test_exif_orientation_is_applied_to_the_pixels(images) -> None:
    # Orientation 6: the stored left edge is the top of the picture.
    source = images.encode(images.halves(80, 40, RED, BLUE), "JPEG", quality=95, exif=images.exif(orientation=6))

    result = convert(source, ConvertParams(format="png"), max_pixels=LIMIT)

    output = images.open(result.data)
    assert output.size == (result.width, result.height) == (40, 80)
    assert close_to(output.getpixel((20, 5)), RED)
    assert close_to(output.getpixel((20, 75)), BLUE)


def test_strip_metadata_drops_exif_and_xmp(images) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><tiff:Orientation>1</tiff:Orientation></x:xmpmeta>'
    source = images.encode(images.picture(), "JPEG", exif=images.exif(gps=True), xmp=xmp)

    result = convert(source, ConvertParams(format="jpeg", strip_metadata=True), max_pixels=LIMIT)

    output = images.open(result.data)
    assert len(output.getexif()) == 0
    assert "xmp" not in output.info


@pytest.mark.parametrize("strip_metadata", [True, False])
def test_a_jpeg_comment_never_reaches_the_output(images, strip_metadata) -> None:
    source = images.encode(images.picture(), "JPEG", comment=b"home address: 1 Private Lane")

    result = convert(source, ConvertParams(format="jpeg", strip_metadata=strip_metadata), max_pixels=LIMIT)

    assert "comment" not in images.open(result.data).info
    assert b"Private Lane" not in result.data


@pytest.mark.parametrize("output_format", ["jpeg", "png", "webp", "avif"])
def test_keeping_metadata_keeps_exif_and_gps_with_orientation_reset(images, output_format) -> None:
    source = images.encode(images.picture(80, 40), "JPEG", exif=images.exif(orientation=6, gps=True))

    result = convert(source, ConvertParams(format=output_format, strip_metadata=False), max_pixels=LIMIT)

    output = images.open(result.data)
    exif = output.getexif()
    assert output.size == (40, 80)
    assert exif.get(ExifTags.Base.Make) == "PixTools Camera"
    assert exif.get(ExifTags.Base.Orientation, 1) == 1
    assert exif.get_ifd(ExifTags.IFD.GPSInfo).get(ExifTags.GPS.GPSLatitudeRef) == "S"


def test_keeping_metadata_resets_the_xmp_orientation_too(images) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    source = images.encode(images.picture(), "JPEG", exif=images.exif(orientation=6), xmp=xmp)

    result = convert(source, ConvertParams(format="webp", strip_metadata=False), max_pixels=LIMIT)

    assert b'tiff:Orientation="1"' in images.open(result.data).info["xmp"]


@pytest.mark.parametrize("output_format", ["jpeg", "png", "webp", "avif"])
def test_the_icc_profile_survives_even_when_metadata_is_stripped(images, output_format) -> None:
    profile = images.srgb_profile()
    source = images.encode(images.picture(), "PNG", icc_profile=profile)

    result = convert(source, ConvertParams(format=output_format, strip_metadata=True), max_pixels=LIMIT)

    assert images.open(result.data).info.get("icc_profile") == profile


def test_transparent_pixels_become_white_when_converted_to_jpeg(images) -> None:
    picture = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    picture.paste((255, 0, 0, 255), (20, 0, 40, 20))

    result = convert(images.encode(picture, "PNG"), ConvertParams(format="jpeg"), max_pixels=LIMIT)

    output = images.open(result.data)
    assert output.mode == "RGB"
    assert close_to(output.getpixel((5, 10)), (255, 255, 255), tolerance=8)
    assert close_to(output.getpixel((35, 10)), RED)


def test_a_palette_gif_becomes_rgb(images) -> None:
    source = images.encode(images.halves(40, 20, RED, BLUE).convert("P"), "GIF")

    output = images.open(convert(source, ConvertParams(format="png"), max_pixels=LIMIT).data)

    assert output.mode == "RGB"
    assert close_to(output.getpixel((5, 10)), RED, tolerance=4)


def test_a_palette_png_with_a_transparent_entry_becomes_rgba(images) -> None:
    palette_image = images.halves(40, 20, RED, BLUE).convert("P")
    transparent_index = palette_image.getpixel((35, 10))
    source = images.encode(palette_image, "PNG", transparency=transparent_index)

    output = images.open(convert(source, ConvertParams(format="png"), max_pixels=LIMIT).data)

    assert output.mode == "RGBA"
    assert output.getpixel((35, 10))[3] == 0
    assert output.getpixel((5, 10)) == (*RED, 255)


def test_a_cmyk_jpeg_becomes_rgb_with_the_right_colour(images) -> None:
    cmyk_red = Image.new("CMYK", (32, 32), (0, 255, 255, 0))

    output = images.open(convert(images.encode(cmyk_red, "JPEG"), ConvertParams(format="png"), max_pixels=LIMIT).data)

    assert output.mode == "RGB"
    assert close_to(output.getpixel((16, 16)), RED)


def test_a_16_bit_grey_png_is_scaled_to_8_bits_rather_than_clipped(images) -> None:
    source = images.encode(Image.new("I;16", (16, 16), 0x8000), "PNG")

    output = images.open(convert(source, ConvertParams(format="png"), max_pixels=LIMIT).data)

    assert output.mode == "L"
    assert output.getpixel((8, 8)) == 128


def test_a_16_bit_rgb_png_decodes_to_8_bit_rgb(images) -> None:
    # One row per line of filter byte 0 then 16-bit big-endian samples: (0xFFFF, 0x8000, 0x0000).
    row = b"\x00" + b"\xff\xff\x80\x00\x00\x00" * 8
    source = images.raw_png(8, 4, bit_depth=16, colour_type=2, pixels=row * 4)

    output = images.open(convert(source, ConvertParams(format="png"), max_pixels=LIMIT).data)

    assert output.mode == "RGB"
    assert output.getpixel((4, 2)) == (255, 128, 0)


@pytest.mark.parametrize(("mode", "value", "expected"), [("I", 40000, 156), ("F", 0.5, 128), ("1", 1, 255)])
def test_integer_float_and_bilevel_tiffs_become_8_bit_grey(images, mode, value, expected) -> None:
    source = images.encode(Image.new(mode, (16, 16), value), "TIFF")

    output = images.open(convert(source, ConvertParams(format="png"), max_pixels=LIMIT).data)

    assert output.mode == "L"
    assert abs(output.getpixel((8, 8)) - expected) <= 1


def test_a_grey_image_with_alpha_converts_to_every_format(images) -> None:
    source = images.png(32, 32, mode="LA")

    for output_format in ("jpeg", "png", "webp", "avif"):
        result = convert(source, ConvertParams(format=output_format), max_pixels=LIMIT)
        assert images.open(result.data).size == (32, 32)
