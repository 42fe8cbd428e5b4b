"""Choose the blob store from settings."""

from pixtools_platform.blobstore.base import BlobStore
from pixtools_platform.blobstore.local import LocalBlobStore
from pixtools_platform.blobstore.s3 import S3BlobStore
from pixtools_platform.settings import CommonSettings


async def open_blob_store(settings: CommonSettings) -> BlobStore:
    """Open the configured blob store."""
    if settings.blob_backend == "s3":
        return await S3BlobStore.open(
            bucket=settings.s3_bucket, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        )
    return LocalBlobStore(settings.blob_dir)
