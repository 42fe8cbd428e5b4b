"""API keys, refresh tokens and webhook secrets: generated from the OS's CSPRNG, stored only as hashes."""

import base64
import hashlib
import secrets
from typing import Literal

Scope = Literal["jobs:read", "jobs:write", "keys:manage", "webhooks:manage", "admin"]
"""What a key or an access token may do; every route requires one."""

JOBS_READ: Scope = "jobs:read"
JOBS_WRITE: Scope = "jobs:write"
KEYS_MANAGE: Scope = "keys:manage"
WEBHOOKS_MANAGE: Scope = "webhooks:manage"
ADMIN: Scope = "admin"
TENANT_SCOPES: tuple[Scope, ...] = (JOBS_READ, JOBS_WRITE, KEYS_MANAGE, WEBHOOKS_MANAGE)
"""Every scope a tenant key can hold; admin keys hold `admin` alone."""


def new_api_key(scope: str = "tenant") -> str:
    """A fresh API key; the prefix tells tenant keys (`pxt_`) from admin keys (`pxa_`) at a glance."""
    return f"{'pxa' if scope == ADMIN else 'pxt'}_{secrets.token_urlsafe(32)}"


def key_prefix(key: str) -> str:
    """The part of a key that is shown in listings and logs to recognise it: never enough to use it."""
    return key[:12]


def hash_api_key(key: str) -> str:
    """SHA-256 of a key: keys are long random strings, so a fast hash is enough and lookups stay O(1)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_refresh_token() -> str:
    """A fresh refresh token: 48 random bytes, stored as its SHA-256 like keys."""
    return f"pxr_{secrets.token_urlsafe(48)}"


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: 'whsec_' and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
