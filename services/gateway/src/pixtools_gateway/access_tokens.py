"""Short-lived access tokens: EdDSA (Ed25519) JWTs that anyone can verify with the keys in the JWKS.

A token names its API key (`sub`), so revoking the key ends the token too: the gateway checks the key's
state through the same cache as for keys. Signing keys come from settings; earlier public keys stay in the
JWKS after a rotation so that tokens they signed verify until they expire.
"""

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pixtools_gateway.settings import GatewaySettings

ALGORITHM = "EdDSA"
_VERIFIED_LIMIT = 10_000
log = logging.getLogger(__name__)


class InvalidToken(Exception):
    """The token's signature, key id, audience, issuer or lifetime does not check out."""


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says: its API key, tenant and scopes."""

    key_id: uuid.UUID
    tenant_id: uuid.UUID | None
    scopes: frozenset[str]
    expires_at: float = 0.0


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of the public key: stable across restarts, so `kid` needs no setting."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _raw_b64(public_key)}, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _raw_b64(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AccessTokens:
    """Signs access tokens with the current key; verifies those of the current and the previous keys."""

    def __init__(
        self,
        signing_key: Ed25519PrivateKey,
        *,
        issuer: str,
        audience: str,
        lifetime_s: int,
        previous_keys: Sequence[Ed25519PublicKey] = (),
    ) -> None:
        self._signing_key = signing_key
        self._kid = key_id_of(signing_key.public_key())
        self._verifying = {key_id_of(key): key for key in (signing_key.public_key(), *previous_keys)}
        self.issuer, self.audience, self.lifetime_s = issuer, audience, lifetime_s
        # A signature check costs far more than a request's other work: remember tokens already verified.
        self._verified: dict[str, AccessClaims] = {}

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> "AccessTokens":
        """The configured signing key, or outside production an ephemeral one (tokens then end with the process)."""
        return cls(
            _signing_key(settings),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            lifetime_s=settings.access_token_ttl_s,
            previous_keys=[_public_key(pem) for pem in settings.token_previous_public_keys],
        )

    def issue(self, *, key_id: uuid.UUID, tenant_id: uuid.UUID | None, scopes: Sequence[str]) -> str:
        """A signed token for the key, valid for `lifetime_s` from now."""
        issued_at = int(time.time())
        claims = {
            "sub": str(key_id),
            "tenant": str(tenant_id) if tenant_id else None,
            "scope": " ".join(scopes),
            "iat": issued_at,
            "exp": issued_at + self.lifetime_s,
            "aud": self.audience,
            "iss": self.issuer,
        }
        return jwt.encode(claims, self._signing_key, algorithm=ALGORITHM, headers={"kid": self._kid})

    def verify(self, token: str) -> AccessClaims:
        """The claims of a token this service signed and that is still valid; raises InvalidToken otherwise."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at <= time.time():
                del self._verified[token]
                raise InvalidToken("the access token has expired")
            return known
        claims = self._decode(token)
        if len(self._verified) >= _VERIFIED_LIMIT:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            public_key = self._verifying.get(kid) if isinstance(kid, str) else None
            if public_key is None:
                raise InvalidToken("the token's key id is not in the JWKS")
            claims = jwt.decode(
                token,
                public_key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["sub", "scope", "iat", "exp", "aud", "iss"]},
            )
            tenant = claims.get("tenant")
            return AccessClaims(
                key_id=uuid.UUID(claims["sub"]),
                tenant_id=uuid.UUID(tenant) if tenant else None,
                scopes=frozenset(str(claims["scope"]).split()),
                expires_at=float(claims["exp"]),
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidToken("the access token has expired") from error
        except (jwt.InvalidTokenError, ValueError, TypeError) as error:
            raise InvalidToken("the access token is not valid") from error

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of every key a valid token may be signed with."""
        return {
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": _raw_b64(key), "kid": kid, "use": "sig", "alg": ALGORITHM}
                for kid, key in self._verifying.items()
            ]
        }


def looks_like_token(credential: str) -> bool:
    """A JWT has three dot-separated parts; API keys have no dot."""
    return credential.count(".") == 2


def _signing_key(settings: GatewaySettings) -> Ed25519PrivateKey:
    if settings.token_signing_key is not None:
        pem = settings.token_signing_key.get_secret_value().encode()
    elif settings.token_signing_key_file is not None:
        pem = settings.token_signing_key_file.read_bytes()
    else:
        # Settings refuse production without a key, so this is a development or test process.
        log.warning(
            "no PIXTOOLS_TOKEN_SIGNING_KEY: signing access tokens with an ephemeral key; "
            "they will not survive a restart and other replicas will not accept them"
        )
        return Ed25519PrivateKey.generate()
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError("the token signing key is not an unencrypted PEM private key") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the token signing key must be an Ed25519 private key (openssl genpkey -algorithm ed25519)")
    return key


def _public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("previous token keys must be Ed25519 public keys in PEM")
    return key
