"""The blob-store port."""

from collections.abc import Sequence
from typing import Protocol


class BlobStoreError(Exception):
    """Base class of blob-store errors."""


class BlobNotFound(BlobStoreError):
    """No object is stored under the key."""


class InvalidKey(BlobStoreError):
    """The key is empty, absolute or climbs out of the store."""


class BlobStore(Protocol):
    """Stores objects under deterministic keys; writing a key again overwrites it."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` durably under `key`."""
        ...

    async def get(self, key: str) -> bytes:
        """Read an object; raises BlobNotFound."""
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete objects; missing keys are ignored."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix` (a folder ending in '/'); returns how many."""
        ...

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A time-limited download URL, or None when the store cannot make one."""
        ...

    async def check(self) -> None:
        """Raise when the store is unreachable (readiness)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def validate_key(key: str) -> str:
    """Reject keys that could escape the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise InvalidKey(f"invalid blob key {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Accept only a folder of valid keys: ending in '/', so `jobs/a/` never matches `jobs/ab/`."""
    if not prefix.endswith("/"):
        raise InvalidKey(f"invalid blob prefix {prefix!r}: it must end with '/'")
    validate_key(prefix[:-1])
    return prefix
