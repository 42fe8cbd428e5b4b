"""Metadata extraction: size, colour, EXIF as JSON and GPS in decimal degrees."""

from __future__ import annotations

import json

import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational
from pydantic import JsonValue, TypeAdapter

from pixtools_imaging import extract_metadata

LIMIT = 50_000_000


def test_metadata_describes_format_size_and_colour(images) -> None:
    metadata = extract_metadata(images.png(120, 80, mode="RGBA"), max_pixels=LIMIT)

    assert metadata["format"] == "png"
    assert metadata["content_type"] == "image/png"
    assert (metadata["width"], metadata["height"]) == (120, 80)
    assert metadata["mode"] == "RGBA"
    assert metadata["has_alpha"] is True
    assert metadata["orientation"] == 1
    assert metadata["icc_profile"] is False
    assert metadata["exif"] == {}
    assert metadata["gps"] is None


def test_metadata_reports_the_upright_size_and_the_orientation(images) -> None:
    source = images.encode(images.picture(120, 80), "JPEG", exif=images.exif(orientation=6))

    metadata = extract_metadata(source, max_pixels=LIMIT)

    assert (metadata["width"], metadata["height"], metadata["orientation"]) == (80, 120, 6)


def test_gps_position_comes_out_in_signed_decimal_degrees(images) -> None:
    source = images.encode(images.picture(), "JPEG", exif=images.exif(gps=True))

    gps = extract_metadata(source, max_pixels=LIMIT)["gps"]

    assert isinstance(gps, dict)
    assert gps["latitude"] == pytest.approx(-33.865)
    assert gps["longitude"] == pytest.approx(151.2101667)
    assert gps["altitude"] == pytest.approx(58.0)


def test_altitude_below_sea_level_is_negative(images) -> None:
    exif = images.exif(gps=True)
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSAltitudeRef] = b"\x01"

    gps = extract_metadata(images.encode(images.picture(), "JPEG", exif=exif), max_pixels=LIMIT)["gps"]

    assert isinstance(gps, dict)
    assert gps["altitude"] == pytest.approx(-58.0)


def test_exif_tags_have_readable_names_and_json_safe_values(images) -> None:
    exif = images.exif(gps=True)
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.ExposureTime] = IFDRational(1, 250)
    details[ExifTags.Base.MakerNote] = bytes(range(256)) * 4
    details[ExifTags.Base.UserComment] = b"\x00\x01\x02binary\xff" * 20
    source = images.encode(images.picture(), "JPEG", exif=exif)

    metadata = extract_metadata(source, max_pixels=LIMIT)

    readable = metadata["exif"]
    assert isinstance(readable, dict)
    assert readable["Make"] == "PixTools Camera"
    assert readable["ExposureTime"] == pytest.approx(0.004)
    assert "MakerNote" not in readable
    assert isinstance(readable["UserComment"], str)
    assert len(readable["UserComment"]) <= 131
    TypeAdapter(dict[str, JsonValue]).validate_python(metadata)
    json.dumps(metadata, allow_nan=False)


def test_icc_profile_presence_is_flagged(images) -> None:
    source = images.encode(images.picture(), "PNG", icc_profile=images.srgb_profile())

    assert extract_metadata(source, max_pixels=LIMIT)["icc_profile"] is True


def test_palette_with_transparency_reports_alpha(images) -> None:
    source = images.encode(Image.new("P", (8, 8), 0), "PNG", transparency=0)

    metadata = extract_metadata(source, max_pixels=LIMIT)

    assert (metadata["mode"], metadata["has_alpha"]) == ("P", True)


def test_an_out_of_range_orientation_counts_as_upright(images) -> None:
    source = images.encode(images.picture(120, 80), "JPEG", exif=images.exif(orientation=9))

    metadata = extract_metadata(source, max_pixels=LIMIT)

    assert (metadata["width"], metadata["height"], metadata["orientation"]) == (120, 80, 1)
