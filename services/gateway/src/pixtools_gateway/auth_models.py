"""Bodies of the API-key and token endpoints."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from pixtools_gateway.security import Scope


class NewApiKey(BaseModel):
    """A key to create for the caller's tenant."""

    name: str = Field(min_length=1, max_length=100, description="What the key is for, shown in listings.")
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=5,
        description="What the key may do; only scopes the calling credential holds itself, never `admin`.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working (RFC 3339 with a time zone); never when absent."
    )


class ApiKeyView(BaseModel):
    """A key as listed: never its secret or hash."""

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it; not enough to use it.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = Field(description="Last use, recorded at most about once a minute.")
    expires_at: datetime | None
    revoked_at: datetime | None


class CreatedApiKey(ApiKeyView):
    """A new key, with its secret: shown this once and never again."""

    key: str = Field(description="The secret to send as `X-API-Key` or `Authorization: Bearer`. Keep it safe.")


class ApiKeyList(BaseModel):
    """The tenant's keys, newest first, revoked ones included."""

    items: list[ApiKeyView]


class TokenResponse(BaseModel):
    """A signed access token and a single-use refresh token (RFC 6749 names)."""

    access_token: str = Field(description="A JWT to send as `Authorization: Bearer`, verifiable with the JWKS.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Use once at `POST /v1/auth/refresh` for a new pair.")


class RefreshRequest(BaseModel):
    """A refresh token to exchange."""

    refresh_token: str = Field(min_length=1, max_length=200)


class JsonWebKey(BaseModel):
    """One Ed25519 public key (RFC 8037)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url.")
    kid: str = Field(description="Its RFC 7638 thumbprint, the `kid` header of the tokens it signs.")
    use: Literal["sig"]
    alg: Literal["EdDSA"]


class JsonWebKeySet(BaseModel):
    """Every key a valid access token may be signed with."""

    keys: list[JsonWebKey]
