"""Expiring signed links to outputs, for the local blob store, which has no presigned URLs of its own.

A link is `/v1/output-links/{job_id}/{output_id}?expires=…&signature=…`, the signature an HMAC-SHA256 over the
path and the expiry, so it opens one output, until one time, in an `<img>` tag or a browser tab, without a key.
"""

import base64
import hashlib
import hmac
import math
import secrets
import time
import uuid

from pixtools_gateway.errors import InvalidLink
from pixtools_gateway.settings import GatewaySettings

PREFIX = "/v1/output-links"
# Expiry times are rounded up to this step, so a job read twice in a row lists the same links and browsers can
# cache what they show.
_ROUND_S = 60


class OutputLinks:
    """Signs output links and checks the signed links the gateway is asked to open."""

    def __init__(self, secret: bytes, lifetime_s: int) -> None:
        self._secret = secret
        self._lifetime_s = lifetime_s

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> "OutputLinks":
        """The configured key, or a random one for this process (settings refuse that in production)."""
        configured = settings.output_link_secret
        secret = configured.get_secret_value().encode() if configured else secrets.token_bytes(32)
        return cls(secret, settings.presign_expiry_s)

    def sign(self, job_id: uuid.UUID, output_id: uuid.UUID, *, now: float | None = None) -> str:
        """The output's signed path and query, valid for the configured lifetime."""
        moment = time.time() if now is None else now
        expires = math.ceil((moment + self._lifetime_s) / _ROUND_S) * _ROUND_S
        path = link_path(job_id, output_id)
        return f"{path}?expires={expires}&signature={self._signature(path, expires)}"

    def check(self, path: str, expires: int, signature: str, *, now: float | None = None) -> None:
        """Raise InvalidLink unless the gateway signed this path with this expiry, and it has not passed."""
        # Compared as bytes: compare_digest refuses str with non-ASCII characters, which a forged link may carry.
        if not hmac.compare_digest(self._signature(path, expires).encode(), signature.encode()):
            raise InvalidLink("the link's signature does not match; ask the API for a fresh link")
        if expires <= (time.time() if now is None else now):
            raise InvalidLink("the link has expired; read the job again for a fresh one")

    def _signature(self, path: str, expires: int) -> str:
        digest = hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def link_path(job_id: uuid.UUID, output_id: uuid.UUID) -> str:
    """The path a signed link to this output opens."""
    return f"{PREFIX}/{job_id}/{output_id}"
