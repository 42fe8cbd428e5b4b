"""The detect service's exceptions."""


class DetectError(Exception):
    """Base of every detect service error."""


class ModelFileMissing(DetectError):
    """A model or class-list file is not in the models directory; the message says how to get it."""


class ModelConversionError(DetectError):
    """The ONNX graph uses something the converter does not support, or disagrees with the class list."""


class UnknownClassNames(DetectError):
    """`classes` in the detect params names classes the model does not know."""

    code = "detect.unknown_class"


class ModelDownloadFailed(DetectError):
    """An official model file could not be downloaded."""


class TooManySlices(DetectError):
    """The image needs more slices than one step may run (`PIXTOOLS_MAX_SLICES`); retrying will not help."""

    code = "image.too_many_tiles"
