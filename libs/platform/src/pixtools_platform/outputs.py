"""Storing a step's output at its deterministic key and describing it for the step's event."""

from hashlib import sha256
from typing import Literal, Protocol

from pixtools_contracts import StepOutput, StepRequested, output_key
from pixtools_platform.blobstore import BlobStore


async def store_output(
    blobs: BlobStore,
    request: StepRequested,
    *,
    name: str,
    extension: str,
    data: bytes,
    content_type: str,
    role: Literal["image", "artifact"],
    width: int | None = None,
    height: int | None = None,
) -> StepOutput:
    """Write the bytes (a retry overwrites the same key) and return their description."""
    key = output_key(request, name, extension)
    await blobs.put(key, data, content_type)
    return StepOutput(
        key=key,
        content_type=content_type,
        bytes=len(data),
        sha256=sha256(data).hexdigest(),
        width=width,
        height=height,
        name=name,
        role=role,
    )


class EncodedPicture(Protocol):
    """An encoded image as the imaging library returns it."""

    @property
    def data(self) -> bytes: ...

    @property
    def content_type(self) -> str: ...

    @property
    def format(self) -> str: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


async def store_image(blobs: BlobStore, request: StepRequested, image: EncodedPicture) -> StepOutput:
    """Store a step's result image as its 'image' output."""
    return await store_output(
        blobs,
        request,
        name="image",
        extension="jpg" if image.format == "jpeg" else image.format,
        data=image.data,
        content_type=image.content_type,
        role="image",
        width=image.width,
        height=image.height,
    )
