"""Errors raised for images that cannot be processed; each carries a stable code."""


class ImageError(Exception):
    """An image could not be processed; the message says why and `code` names the kind."""

    code: str = "image.error"


class UnsupportedImage(ImageError):
    """The bytes are not an image format the service accepts (unknown or forbidden magic bytes)."""

    code = "image.unsupported"


class CorruptImage(ImageError):
    """The image is truncated or cannot be decoded."""

    code = "image.corrupt"


class ImageTooLarge(ImageError):
    """The image declares more pixels than allowed; refused before any pixel is decoded."""

    code = "image.too_large"
