"""A blob store on S3 or any S3-compatible server, through aioboto3."""

import contextlib
from collections.abc import Sequence
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pixtools_platform.blobstore.base import BlobNotFound, BlobStoreError, validate_key, validate_prefix

_DELETE_BATCH = 1000  # S3's limit per DeleteObjects call


class S3BlobStore:
    """Objects in one bucket; downloads use presigned URLs."""

    def __init__(self, client: Any, bucket: str, stack: contextlib.AsyncExitStack) -> None:
        self._client = client
        self._bucket = bucket
        self._stack = stack

    @classmethod
    async def open(cls, *, bucket: str, endpoint_url: str | None, region: str) -> "S3BlobStore":
        """Open one client for the process's lifetime."""
        stack = contextlib.AsyncExitStack()
        session = aioboto3.Session()
        config = Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 3})
        client = await stack.enter_async_context(
            session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        )
        return cls(client, bucket, stack)

    async def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (local stacks and tests)."""
        try:
            await self._client.head_bucket(Bucket=self._bucket)
        except ClientError:
            await self._client.create_bucket(Bucket=self._bucket)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Upload an object; S3 makes it visible only once complete."""
        await self._client.put_object(Bucket=self._bucket, Key=validate_key(key), Body=data, ContentType=content_type)

    async def get(self, key: str) -> bytes:
        """Download an object; raises BlobNotFound."""
        try:
            response = await self._client.get_object(Bucket=self._bucket, Key=validate_key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from error
            raise
        async with response["Body"] as stream:
            data: bytes = await stream.read()
            return data

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete objects in batches; missing keys are ignored by S3."""
        for start in range(0, len(keys), _DELETE_BATCH):
            chunk = [{"Key": validate_key(key)} for key in keys[start : start + _DELETE_BATCH]]
            await self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": chunk, "Quiet": True})

    async def delete_prefix(self, prefix: str) -> int:
        """List the prefix page by page (up to 1000 keys each) and delete each page in one request."""
        paginator = self._client.get_paginator("list_objects_v2")
        removed = 0
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=validate_prefix(prefix)):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            response = await self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
            # DeleteObjects answers 200 even when some keys failed; a quiet answer lists only those.
            if errors := response.get("Errors"):
                first = errors[0]
                raise BlobStoreError(
                    f"could not delete {len(errors)} objects under {prefix!r}: {first.get('Code')} {first.get('Key')}"
                )
            removed += len(keys)
        return removed

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A GET URL valid for `expires_s` seconds."""
        url: str = await self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": validate_key(key)}, ExpiresIn=expires_s
        )
        return url

    async def check(self) -> None:
        """Fail when the bucket is unreachable."""
        await self._client.head_bucket(Bucket=self._bucket)

    async def close(self) -> None:
        """Close the client."""
        await self._stack.aclose()
