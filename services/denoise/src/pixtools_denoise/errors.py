"""The denoise service's errors: every one says what went wrong and, where it can, what to do."""


class DenoiseError(Exception):
    """Base class of the denoise service's errors."""


class MissingWeights(DenoiseError):
    """The DnCNN weights file is not in the models directory."""


class InvalidWeights(DenoiseError):
    """A weights file exists but does not hold DnCNN colour-blind tensors in KAIR's layout."""


class WeightsDownloadFailed(DenoiseError):
    """The official weights file could not be fetched."""


class UnsupportedImage(DenoiseError):
    """The image's shape or pixel type cannot be denoised; retrying will not help."""

    code = "image.unsupported"


class TooManyTiles(UnsupportedImage):
    """The image needs more tiles than one step may run (`PIXTOOLS_MAX_TILES`); retrying will not help."""

    code = "image.too_many_tiles"
