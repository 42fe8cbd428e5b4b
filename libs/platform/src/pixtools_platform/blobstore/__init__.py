"""One blob-store interface with a local-directory and an S3 implementation."""

from pixtools_platform.blobstore.base import BlobNotFound, BlobStore, BlobStoreError, InvalidKey
from pixtools_platform.blobstore.factory import open_blob_store
from pixtools_platform.blobstore.local import LocalBlobStore
from pixtools_platform.blobstore.s3 import S3BlobStore

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "InvalidKey",
    "LocalBlobStore",
    "S3BlobStore",
    "open_blob_store",
]
