"""Hostile and broken input only ever raises the ImageError family, with the right class and code."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pixtools_contracts import ConvertParams, ResizeParams
from pixtools_imaging import (
    CorruptImage,
    ImageError,
    ImageTooLarge,
    UnsupportedImage,
    convert,
    extract_metadata,
    probe,
    resize,
)

LIMIT = 50_000_000

OPERATIONS: dict[str, Callable[[bytes, int], object]] = {
    "probe": lambda data, limit: probe(data, max_pixels=limit),
    "resize": lambda data, limit: resize(data, ResizeParams(width=10), max_pixels=limit),
    "convert": lambda data, limit: convert(data, ConvertParams(format="webp"), max_pixels=limit),
    "metadata": lambda data, limit: extract_metadata(data, max_pixels=limit),
}
DECODING_OPERATIONS = ["resize", "convert", "metadata"]


def test_error_classes_carry_stable_codes() -> None:
    assert (UnsupportedImage.code, CorruptImage.code, ImageTooLarge.code) == (
        "image.unsupported",
        "image.corrupt",
        "image.too_large",
    )
    assert all(issubclass(error, ImageError) for error in (UnsupportedImage, CorruptImage, ImageTooLarge))


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"just some text\n",
        b"<!DOCTYPE html><html><head><title>x</title></head></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 32,
    ],
    ids=["empty", "text", "html", "svg", "heic"],
)
def test_non_images_are_unsupported(operation, data) -> None:
    with pytest.raises(UnsupportedImage) as raised:
        OPERATIONS[operation](data, LIMIT)

    assert raised.value.code == "image.unsupported"


@pytest.mark.parametrize("operation", DECODING_OPERATIONS)
@pytest.mark.parametrize("format_name", ["JPEG", "PNG", "WEBP", "GIF"])
def test_a_truncated_image_is_corrupt_and_never_half_loaded(images, operation, format_name) -> None:
    data = images.encode(images.picture(200, 150), format_name)

    with pytest.raises(CorruptImage) as raised:
        OPERATIONS[operation](data[: len(data) * 2 // 3], LIMIT)

    assert raised.value.code == "image.corrupt"


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow warns before it gives up on the TIFF
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff" + b"junk" * 50,
        b"\x89PNG\r\n\x1a\n" + b"junk" * 50,
        b"GIF89a" + b"junk" * 50,
        b"RIFF\x10\x00\x00\x00WEBP" + b"junk" * 50,
        b"II*\x00" + b"junk" * 50,
        b"BM" + b"\x00" * 12 + b"\x28\x00\x00\x00" + b"junk" * 50,
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"junk" * 50,
    ],
    ids=["jpeg", "png", "gif", "webp", "tiff", "bmp", "avif"],
)
def test_right_magic_bytes_with_a_garbage_header_are_corrupt(operation, data) -> None:
    with pytest.raises(CorruptImage) as raised:
        OPERATIONS[operation](data, LIMIT)

    assert raised.value.code == "image.corrupt"


@pytest.mark.parametrize("operation", DECODING_OPERATIONS)
def test_a_png_with_a_corrupted_pixel_stream_is_corrupt(images, operation) -> None:
    data = bytearray(images.png(200, 150))
    start = data.index(b"IDAT") + 20
    data[start : start + 40] = bytes(byte ^ 0x55 for byte in data[start : start + 40])

    with pytest.raises(CorruptImage):
        OPERATIONS[operation](bytes(data), LIMIT)


@pytest.mark.parametrize("operation", DECODING_OPERATIONS)
def test_a_jpeg_with_garbage_in_its_scan_is_corrupt(images, operation) -> None:
    data = images.jpeg(200, 150)
    scan = data.index(b"\xff\xda") + 20
    garbage = bytes((index * 97 + 13) % 256 for index in range(len(data) - scan - 2))

    with pytest.raises(CorruptImage):
        OPERATIONS[operation](data[:scan] + garbage + b"\xff\xd9", LIMIT)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("side", [8_000, 1_000_000])
def test_a_decompression_bomb_png_is_refused_from_its_header(images, operation, side) -> None:
    # A few hundred bytes declaring 64 million or a trillion RGBA pixels; allocating them would take gigabytes.
    bomb = images.raw_png(side, side, bit_depth=8, colour_type=6, pixels=b"\x00" * 4096)
    assert len(bomb) < 200

    with pytest.raises(ImageTooLarge) as raised:
        OPERATIONS[operation](bomb, LIMIT)

    assert raised.value.code == "image.too_large"


@pytest.mark.parametrize("operation", OPERATIONS)
def test_max_pixels_is_the_exact_limit(images, operation) -> None:
    data = images.png(100, 50)

    OPERATIONS[operation](data, 5_000)
    with pytest.raises(ImageTooLarge):
        OPERATIONS[operation](data, 4_999)


def test_an_upscale_beyond_max_pixels_is_refused_before_resampling(images) -> None:
    params = ResizeParams(width=16384, height=16384, fit="fill", upscale=True)

    with pytest.raises(ImageTooLarge) as raised:
        resize(images.png(10, 10), params, max_pixels=LIMIT)

    assert "resized image" in str(raised.value)


def test_a_probe_of_a_jpeg_cut_inside_its_header_is_corrupt(images) -> None:
    with pytest.raises(CorruptImage):
        probe(images.jpeg()[:30], max_pixels=LIMIT)
