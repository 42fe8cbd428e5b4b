"""Request bodies: a byte cap enforced while the body streams, JSON objects read under it, and image probing."""

import io
import json
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.requests import Request
from starlette.types import Message, Receive

from pixtools_gateway.errors import InvalidImage, InvalidRequest, UnsupportedMedia, UploadTooLarge
from pixtools_gateway.handlers.submit import Upload

# Formats Pillow identifies from their magic bytes, and the MIME type we record for each.
ACCEPTED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
}


def limited_receive(receive: Receive, limit: int) -> Receive:
    """Wrap an ASGI receive so that reading more than `limit` body bytes raises UploadTooLarge at once."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UploadTooLarge(f"the request body exceeds {limit} bytes")
        return message

    return wrapped


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, refusing bodies over `limit` bytes while they stream."""
    limited = Request(request.scope, limited_receive(request.receive, limit))
    try:
        body = json.loads(await limited.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise InvalidRequest("the body is nested too deeply") from error
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def probe_upload(data: bytes, *, max_pixels: int) -> Upload:
    """Identify the image from its bytes and check its decoded size before anything is stored."""
    if not data:
        raise InvalidImage("the file is empty")
    with warnings.catch_warnings():
        # Pillow warns (then raises) on huge images; we check the pixel count ourselves with a clear message.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = image.format, image.size
        except Image.DecompressionBombError as error:
            raise InvalidImage(f"the image declares more pixels than the limit of {max_pixels}") from error
        except UnidentifiedImageError as error:
            raise UnsupportedMedia("the file is not an image in a supported format") from error
        except (OSError, ValueError, SyntaxError) as error:
            raise InvalidImage(f"the image header is corrupt: {error}") from error
    if kind not in ACCEPTED_FORMATS:
        raise UnsupportedMedia(f"{kind} images are not accepted; send one of {', '.join(sorted(ACCEPTED_FORMATS))}")
    if width * height > max_pixels:
        raise InvalidImage(f"the image has {width}x{height} pixels; the limit is {max_pixels} pixels")
    return Upload(data=data, content_type=ACCEPTED_FORMATS[kind], width=width, height=height)
