"""Uploads: the streaming byte cap and image probing from the bytes themselves."""

import io

import pytest
from PIL import Image
from starlette.types import Message

from pixtools_gateway.adapters.uploads import limited_receive, probe_upload
from pixtools_gateway.errors import InvalidImage, UnsupportedMedia, UploadTooLarge


def _image(kind: str, size: tuple[int, int] = (3, 2)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize(("kind", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_an_image_is_identified_from_its_bytes(kind: str, content_type: str) -> None:
    data = _image(kind)
    upload = probe_upload(data, max_pixels=100)
    assert (upload.content_type, upload.width, upload.height, upload.data) == (content_type, 3, 2, data)


def test_more_pixels_than_the_limit_is_an_invalid_image() -> None:
    with pytest.raises(InvalidImage, match="3x2 pixels; the limit is 5 pixels"):
        probe_upload(_image("PNG"), max_pixels=5)


@pytest.mark.parametrize(
    ("data", "problem"),
    [(b"", InvalidImage), (b"<html><body>hi</body></html>", UnsupportedMedia), (_image("PNG")[:20], InvalidImage)],
)
def test_empty_foreign_or_truncated_files_are_refused(data: bytes, problem: type[Exception]) -> None:
    with pytest.raises(problem):
        probe_upload(data, max_pixels=1_000_000)


async def test_the_byte_cap_stops_the_body_as_soon_as_it_is_passed() -> None:
    chunks: list[Message] = [
        {"type": "http.request", "body": b"x" * 6, "more_body": True},
        {"type": "http.request", "body": b"x" * 5, "more_body": False},
    ]

    async def receive() -> Message:
        return chunks.pop(0)

    limited = limited_receive(receive, 10)
    assert (await limited())["body"] == b"x" * 6
    with pytest.raises(UploadTooLarge, match="exceeds 10 bytes"):
        await limited()
