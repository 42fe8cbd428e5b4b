"""Both blob stores behave the same; S3 runs against a real S3-compatible server."""

import httpx
import pytest

from pixtools_platform.blobstore import BlobNotFound, InvalidKey

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def store(request):
    return request.getfixturevalue("local_store" if request.param == "local" else "s3_store")


async def test_put_then_get_returns_the_same_bytes_and_overwrites_in_place(store) -> None:
    await store.put("tenant/job/steps/0/image.png", b"first", "image/png")
    await store.put("tenant/job/steps/0/image.png", b"second", "image/png")
    assert await store.get("tenant/job/steps/0/image.png") == b"second"


async def test_missing_key_raises_blob_not_found(store) -> None:
    with pytest.raises(BlobNotFound):
        await store.get("tenant/job/nothing")


async def test_delete_removes_and_ignores_missing_keys(store) -> None:
    await store.put("a/b", b"x", "application/octet-stream")
    await store.delete(["a/b", "a/never"])
    with pytest.raises(BlobNotFound):
        await store.get("a/b")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
async def test_keys_that_escape_the_store_are_rejected(store, key) -> None:
    with pytest.raises(InvalidKey):
        await store.put(key, b"x", "text/plain")


async def test_s3_presigned_url_downloads_the_object(s3_store) -> None:
    await s3_store.put("t/j/original", b"\x89PNG data", "image/png")
    url = await s3_store.presigned_url("t/j/original", 60)
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == b"\x89PNG data"


async def test_readiness_check_passes_on_a_reachable_store(store) -> None:
    await store.check()
