"""Signed output links from the blob store: S3 presigns them, the local store cannot."""

from datetime import UTC, datetime, timedelta

from pixtools_aggregator.ports import SignedLink
from pixtools_platform.blobstore import BlobStore


class BlobStoreLinks:
    """Presigns GET links to outputs, valid for `expires_s` seconds from signing."""

    def __init__(self, blobs: BlobStore, *, expires_s: int) -> None:
        self._blobs = blobs
        self._expires_s = expires_s

    async def signed_link(self, key: str) -> SignedLink | None:
        """A presigned link and its expiry, or None with a store that cannot presign."""
        signed_at = datetime.now(UTC)
        url = await self._blobs.presigned_url(key, self._expires_s)
        if url is None:
            return None
        return SignedLink(url=url, expires_at=signed_at + timedelta(seconds=self._expires_s))
