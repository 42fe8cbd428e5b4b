"""API keys and webhook secrets: generated from the OS's CSPRNG, keys stored only as hashes."""

import base64
import hashlib
import secrets


def new_api_key(scope: str = "tenant") -> str:
    """A fresh API key; the prefix tells tenant keys from admin keys at a glance."""
    return f"{'pxa' if scope == 'admin' else 'pxt'}_{secrets.token_urlsafe(32)}"


def hash_api_key(key: str) -> str:
    """SHA-256 of a key: keys are long random strings, so a fast hash is enough and lookups stay O(1)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: 'whsec_' and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
