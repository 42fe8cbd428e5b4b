"""Both blob stores behave the same; S3 runs against a real S3-compatible server."""

import asyncio
import errno
import os
import stat

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


JOB_KEYS = ["jobs/t/j1/original", "jobs/t/j1/steps/0/image.png", "jobs/t/j1/steps/1.0.0/metadata.json"]
NEIGHBOUR_KEYS = ["jobs/t/j10/original", "jobs/t/j2/steps/0/image.png", "jobs/t/j1.zip"]


async def test_delete_prefix_removes_every_object_under_the_folder_and_nothing_beside_it(store) -> None:
    for key in JOB_KEYS + NEIGHBOUR_KEYS:
        await store.put(key, key.encode(), "application/octet-stream")

    assert await store.delete_prefix("jobs/t/j1/") == len(JOB_KEYS)

    for key in JOB_KEYS:
        with pytest.raises(BlobNotFound):
            await store.get(key)
    for key in NEIGHBOUR_KEYS:
        assert await store.get(key) == key.encode()
    assert await store.delete_prefix("jobs/t/j1/") == 0


async def test_delete_prefix_of_an_unknown_folder_deletes_nothing(store) -> None:
    await store.put("jobs/t/kept/original", b"x", "image/png")
    assert await store.delete_prefix("jobs/t/never-stored/") == 0
    assert await store.get("jobs/t/kept/original") == b"x"


@pytest.mark.parametrize("prefix", ["jobs/t/j1", "", "/", "/jobs/", "jobs/../", "jobs//t/"])
async def test_delete_prefix_refuses_anything_but_a_folder_inside_the_store(store, prefix) -> None:
    with pytest.raises(InvalidKey):
        await store.delete_prefix(prefix)


async def test_local_delete_prefix_leaves_no_empty_directories(local_store) -> None:
    for key in JOB_KEYS:
        await local_store.put(key, b"x", "application/octet-stream")
    await local_store.delete_prefix("jobs/t/j1/")
    assert not local_store.path("jobs/t/j1").exists()
    assert local_store.path("jobs/t").is_dir()


async def test_local_put_writes_whole_files_privately_and_leaves_no_temporaries(local_store) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)  # past any single write's size, so a short write would show
    await local_store.put("originals/t/new-job/original", big, "image/jpeg")  # parents made on the way
    await local_store.put("originals/t/new-job/original", b"second", "image/jpeg")  # replaced in place
    await local_store.put("originals/t/new-job/other", big, "image/jpeg")  # the directory exists already
    directory = local_store.path("originals/t/new-job")
    assert sorted(entry.name for entry in directory.iterdir()) == ["original", "other"]
    assert local_store.path("originals/t/new-job/original").read_bytes() == b"second"
    assert local_store.path("originals/t/new-job/other").read_bytes() == big
    assert stat.S_IMODE(local_store.path("originals/t/new-job/other").stat().st_mode) == 0o600


async def test_local_put_that_fails_leaves_the_old_file_and_no_temporary(local_store, monkeypatch) -> None:
    await local_store.put("jobs/t/j/out", b"old", "image/png")

    def failing_fsync(descriptor: int) -> None:
        raise OSError(errno.EIO, "simulated fsync failure")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        await local_store.put("jobs/t/j/out", b"new", "image/png")
    assert [entry.name for entry in local_store.path("jobs/t/j").iterdir()] == ["out"]
    assert local_store.path("jobs/t/j/out").read_bytes() == b"old"


@pytest.mark.slow
async def test_s3_delete_prefix_pages_past_one_listing_of_a_thousand_keys(s3_store) -> None:
    keys = [f"jobs/t/big/steps/{index:04d}" for index in range(1001)]
    for start in range(0, len(keys), 50):
        await asyncio.gather(*(s3_store.put(key, b"x", "text/plain") for key in keys[start : start + 50]))

    assert await s3_store.delete_prefix("jobs/t/big/") == 1001

    assert await s3_store.delete_prefix("jobs/t/big/") == 0
