"""Magic-byte sniffing and header probing."""

from __future__ import annotations

import pytest

from pixtools_imaging import ImageInfo, probe, sniff

LIMIT = 50_000_000


@pytest.mark.parametrize(
    ("format_name", "options", "expected"),
    [
        ("JPEG", {}, "jpeg"),
        ("PNG", {}, "png"),
        ("GIF", {}, "gif"),
        ("WEBP", {}, "webp"),
        ("AVIF", {}, "avif"),
        ("TIFF", {}, "tiff"),
        ("TIFF", {"compression": "tiff_deflate"}, "tiff"),
        ("BMP", {}, "bmp"),
    ],
)
def test_sniff_names_each_supported_format_from_its_magic_bytes(images, format_name, options, expected) -> None:
    assert sniff(images.encode(images.picture(), format_name, **options)) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world",
        b"<!DOCTYPE html><html><body>not an image</body></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"%PDF-1.7\n",
        b"BMW is a car, not a bitmap",
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42",
    ],
)
def test_sniff_returns_none_for_text_markup_and_other_files(data) -> None:
    assert sniff(data) is None


def test_sniff_recognises_avif_listed_only_as_a_compatible_brand() -> None:
    assert sniff(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf" + b"\x00" * 16) == "avif"


def test_sniff_names_heic_so_that_it_can_be_refused_precisely() -> None:
    assert sniff(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 16) == "heic"


def test_probe_reads_format_and_size_from_the_header(images) -> None:
    assert probe(images.jpeg(120, 80), max_pixels=LIMIT) == ImageInfo("jpeg", "image/jpeg", 120, 80)


def test_probe_reports_the_upright_size_of_a_rotated_photo(images) -> None:
    data = images.encode(images.picture(120, 80), "JPEG", exif=images.exif(orientation=6))

    info = probe(data, max_pixels=LIMIT)

    assert (info.width, info.height) == (80, 120)


def test_probe_reads_only_the_header_so_missing_pixels_do_not_matter(images) -> None:
    data = images.png(300, 200)
    header_and_a_little = data[:100]

    info = probe(header_and_a_little, max_pixels=LIMIT)

    assert (info.format, info.width, info.height) == ("png", 300, 200)
