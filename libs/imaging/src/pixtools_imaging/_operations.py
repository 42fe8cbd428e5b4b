"""The image operations of the ingest service: resize and convert."""

from __future__ import annotations

from PIL import Image

from pixtools_contracts import ConvertParams, ResizeParams
from pixtools_imaging._decode import decode, header_orientation, open_image
from pixtools_imaging._encode import EncodedImage, encode
from pixtools_imaging._exif import exif_for_output
from pixtools_imaging._formats import OUTPUT_FAMILY
from pixtools_imaging._geometry import ResizePlan, plan_resize
from pixtools_imaging._guard import check_pixels
from pixtools_imaging._normalise import swaps_axes

# Pillow: with a gap of 3 the cheap integer reduce first is indistinguishable from a pure Lanczos pass.
REDUCING_GAP = 3.0


def _apply(image: Image.Image, plan: ResizePlan, full_size: tuple[int, int]) -> Image.Image:
    """Resample, crop and pad as planned; `image` may be a JPEG decoded smaller than `full_size`."""
    crop = plan.crop
    if crop is not None:
        x_ratio, y_ratio = image.width / full_size[0], image.height / full_size[1]
        crop = (crop[0] * x_ratio, crop[1] * y_ratio, crop[2] * x_ratio, crop[3] * y_ratio)
    resized = image
    if crop is not None or image.size != plan.scaled:
        resized = image.resize(plan.scaled, Image.Resampling.LANCZOS, box=crop, reducing_gap=REDUCING_GAP)
    if plan.canvas is None or plan.canvas == resized.size:
        return resized
    # Zero is transparent in LA/RGBA and black otherwise, as the contain fit promises.
    canvas = Image.new(resized.mode, plan.canvas, 0)
    canvas.paste(resized, ((plan.canvas[0] - resized.width) // 2, (plan.canvas[1] - resized.height) // 2))
    return canvas


def resize(data: bytes, params: ResizeParams, *, max_pixels: int) -> EncodedImage:
    """Resize to the requested box and fit, keeping the format family (GIF, BMP and TIFF become PNG)."""
    with open_image(data, max_pixels=max_pixels) as (image_format, image):
        width, height = image.size
        full_size = (height, width) if swaps_axes(header_orientation(image, image_format)) else (width, height)
        plan = plan_resize(full_size, params)
        # Upscaling can ask for far more pixels than the source has; the same limit bounds the output.
        check_pixels(*plan.output_size, max_pixels, what="resized image")
        decoded = decode(image, image_format, at_least=plan.decode_at_least(full_size))
        if decoded.image.size == full_size[::-1] and width != height:
            # A PNG's eXIf chunk after the pixels turned the image only once decoded.
            full_size = decoded.image.size
            plan = plan_resize(full_size, params)
        resized = _apply(decoded.image, plan, full_size)
        return encode(resized, OUTPUT_FAMILY[image_format], icc_profile=decoded.icc_profile)


def convert(data: bytes, params: ConvertParams, *, max_pixels: int) -> EncodedImage:
    """Re-encode in another format; EXIF and XMP are dropped unless strip_metadata is false, the ICC profile kept."""
    with open_image(data, max_pixels=max_pixels) as (image_format, image):
        decoded = decode(image, image_format)
        keep = not params.strip_metadata
        return encode(
            decoded.image,
            params.format,
            quality=params.quality,
            icc_profile=decoded.icc_profile,
            exif=exif_for_output(decoded.exif) if keep and decoded.exif is not None else None,
            xmp=decoded.xmp if keep else None,
        )
