"""Resize: fit modes, upscaling, one-dimension requests, format families and shrink-on-load."""

from __future__ import annotations

import pytest

from pixtools_contracts import ResizeParams
from pixtools_imaging import resize

LIMIT = 50_000_000
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def close_to(actual, expected, tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


@pytest.mark.parametrize(
    ("fit", "expected"),
    [("inside", (100, 50)), ("contain", (100, 100)), ("cover", (100, 100)), ("fill", (100, 100))],
)
def test_each_fit_mode_produces_its_documented_size(images, fit, expected) -> None:
    result = resize(images.jpeg(400, 200), ResizeParams(width=100, height=100, fit=fit), max_pixels=LIMIT)

    assert (result.width, result.height) == expected
    assert images.open(result.data).size == expected


def test_contain_pads_an_opaque_image_with_black(images) -> None:
    source = images.encode(images.halves(400, 200, RED, RED), "PNG")

    result = resize(source, ResizeParams(width=100, height=100, fit="contain"), max_pixels=LIMIT)

    output = images.open(result.data)
    assert output.getpixel((50, 5)) == (0, 0, 0)
    assert output.getpixel((50, 50)) == RED


def test_contain_pads_a_transparent_image_with_transparency(images) -> None:
    source = images.png(400, 200, mode="RGBA")

    result = resize(source, ResizeParams(width=100, height=100, fit="contain"), max_pixels=LIMIT)

    output = images.open(result.data)
    assert output.mode == "RGBA"
    assert output.getpixel((50, 5))[3] == 0
    assert output.getpixel((50, 50))[3] == 255


def test_cover_keeps_the_centre_and_crops_the_sides(images) -> None:
    source = images.encode(images.halves(300, 100, RED, BLUE), "PNG")
    stripes = images.open(source)
    stripes.paste(GREEN, (100, 0, 200, 100))

    result = resize(images.encode(stripes, "PNG"), ResizeParams(width=50, height=50, fit="cover"), max_pixels=LIMIT)

    output = images.open(result.data)
    assert close_to(output.getpixel((1, 25)), GREEN)
    assert close_to(output.getpixel((48, 25)), GREEN)


def test_fill_stretches_without_keeping_the_aspect_ratio(images) -> None:
    result = resize(
        images.png(100, 100), ResizeParams(width=300, height=20, fit="fill", upscale=True), max_pixels=LIMIT
    )

    assert (result.width, result.height) == (300, 20)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (ResizeParams(width=200), (200, 100)),
        (ResizeParams(height=25), (50, 25)),
        (ResizeParams(width=30, fit="cover"), (30, 15)),
        (ResizeParams(height=10, fit="fill"), (20, 10)),
    ],
)
def test_a_single_dimension_scales_proportionally(images, params, expected) -> None:
    params = params.model_copy(update={"upscale": True})

    result = resize(images.png(100, 50), params, max_pixels=LIMIT)

    assert (result.width, result.height) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (ResizeParams(width=200), (100, 50)),
        (ResizeParams(width=400, height=400, fit="inside"), (100, 50)),
        (ResizeParams(width=400, height=400, fit="fill"), (100, 50)),
        (ResizeParams(width=80, height=80, fit="cover"), (80, 50)),
        (ResizeParams(width=400, height=400, fit="contain"), (400, 400)),
    ],
)
def test_without_upscale_a_small_image_is_never_enlarged(images, params, expected) -> None:
    source = images.encode(images.halves(100, 50, RED, RED), "PNG")

    result = resize(source, params, max_pixels=LIMIT)

    assert (result.width, result.height) == expected
    output = images.open(result.data)
    # contain pads to the box, but the picture inside keeps its own 100x50 size.
    assert output.convert("RGB").getbbox() == ((150, 175, 250, 225) if params.fit == "contain" else (0, 0, *expected))


def test_with_upscale_a_small_image_is_enlarged_to_the_box(images) -> None:
    result = resize(images.png(100, 50), ResizeParams(width=400, height=400, upscale=True), max_pixels=LIMIT)

    assert (result.width, result.height) == (400, 200)


@pytest.mark.parametrize(
    ("format_name", "expected_format", "content_type"),
    [
        ("JPEG", "jpeg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("WEBP", "webp", "image/webp"),
        ("AVIF", "avif", "image/avif"),
        ("GIF", "png", "image/png"),
        ("BMP", "png", "image/png"),
        ("TIFF", "png", "image/png"),
    ],
)
def test_resize_keeps_the_format_family_and_turns_gif_bmp_tiff_into_png(
    images, format_name, expected_format, content_type
) -> None:
    source = images.encode(images.picture(80, 60), format_name)

    result = resize(source, ResizeParams(width=40), max_pixels=LIMIT)

    assert (result.format, result.content_type) == (expected_format, content_type)
    assert images.open(result.data).format == expected_format.upper()
    assert (result.width, result.height) == (40, 30)


def test_a_large_jpeg_shrunk_on_load_still_gets_the_exact_size_and_content(images) -> None:
    source = images.encode(images.halves(1600, 1200, RED, BLUE), "JPEG", quality=95)

    result = resize(source, ResizeParams(width=200), max_pixels=LIMIT)

    output = images.open(result.data)
    assert output.size == (200, 150)
    assert close_to(output.getpixel((10, 75)), RED)
    assert close_to(output.getpixel((190, 75)), BLUE)


def test_cover_on_a_shrunk_jpeg_crops_the_centre_of_the_full_image(images) -> None:
    source = images.encode(images.halves(1600, 400, RED, BLUE), "JPEG", quality=95)

    result = resize(source, ResizeParams(width=100, height=100, fit="cover"), max_pixels=LIMIT)

    output = images.open(result.data)
    assert output.size == (100, 100)
    assert close_to(output.getpixel((5, 50)), RED)
    assert close_to(output.getpixel((95, 50)), BLUE)


def test_a_rotated_jpeg_is_resized_upright(images) -> None:
    # Orientation 6: the stored left edge is the top of the picture.
    source = images.encode(images.halves(1600, 800, RED, BLUE), "JPEG", quality=95, exif=images.exif(orientation=6))

    result = resize(source, ResizeParams(width=100), max_pixels=LIMIT)

    output = images.open(result.data)
    assert output.size == (100, 200)
    assert close_to(output.getpixel((50, 10)), RED)
    assert close_to(output.getpixel((50, 190)), BLUE)


def test_resize_drops_exif_so_no_location_leaks(images) -> None:
    source = images.encode(images.picture(80, 60), "JPEG", exif=images.exif(gps=True))

    result = resize(source, ResizeParams(width=40), max_pixels=LIMIT)

    assert len(images.open(result.data).getexif()) == 0


def test_resize_keeps_the_icc_profile(images) -> None:
    profile = images.srgb_profile()
    source = images.encode(images.picture(80, 60), "JPEG", icc_profile=profile)

    result = resize(source, ResizeParams(width=40), max_pixels=LIMIT)

    assert images.open(result.data).info.get("icc_profile") == profile
