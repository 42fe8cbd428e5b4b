"""Signing keys from settings: production refuses to start without one; development makes an ephemeral one."""

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from pixtools_gateway.access_tokens import AccessTokens, InvalidToken
from pixtools_gateway.app import create_app
from pixtools_gateway.settings import GatewaySettings

# A production configuration but for the signing key (local storage needs its own link key too).
PRODUCTION = {"env": "production", "amqp_url": "amqps://pixtools:secret@broker:5671/", "output_link_secret": "x" * 32}


def _pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def test_production_refuses_to_start_without_a_signing_key() -> None:
    with pytest.raises(ValidationError, match="PIXTOOLS_TOKEN_SIGNING_KEY"):
        GatewaySettings(**PRODUCTION)


def test_production_starts_with_a_signing_key_or_a_key_file(tmp_path) -> None:
    assert GatewaySettings(**PRODUCTION, token_signing_key=_pem()).token_signing_key is not None
    key_file = tmp_path / "signing.pem"
    key_file.write_text(_pem())
    tokens = AccessTokens.from_settings(GatewaySettings(**PRODUCTION, token_signing_key_file=key_file))
    assert len(tokens.jwks()["keys"]) == 1


def test_a_signing_key_that_is_not_ed25519_pem_stops_the_app_from_being_built() -> None:
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        create_app(GatewaySettings(token_signing_key="not a key"))


def test_development_signs_with_an_ephemeral_key_and_says_so(caplog) -> None:
    first = AccessTokens.from_settings(GatewaySettings())
    second = AccessTokens.from_settings(GatewaySettings())
    assert "will not survive a restart" in caplog.text
    token = first.issue(key_id=uuid.uuid4(), tenant_id=None, scopes=["admin"])
    assert first.verify(token).scopes == frozenset({"admin"})
    assert first.verify(token).tenant_id is None
    with pytest.raises(InvalidToken):
        second.verify(token)


def test_a_token_is_a_jwt_with_the_documented_claims() -> None:
    tokens = AccessTokens.from_settings(GatewaySettings(token_issuer="https://auth.example", token_audience="api"))
    key_id, tenant_id = uuid.uuid4(), uuid.uuid4()
    claims = jwt.decode(
        tokens.issue(key_id=key_id, tenant_id=tenant_id, scopes=["jobs:read", "jobs:write"]),
        options={"verify_signature": False},
    )
    assert set(claims) == {"sub", "tenant", "scope", "iat", "exp", "aud", "iss"}
    assert (claims["sub"], claims["tenant"], claims["scope"]) == (str(key_id), str(tenant_id), "jobs:read jobs:write")
    assert (claims["aud"], claims["iss"], claims["exp"] - claims["iat"]) == ("api", "https://auth.example", 900)


def test_a_token_remembered_as_verified_still_expires_on_time() -> None:
    tokens = AccessTokens(Ed25519PrivateKey.generate(), issuer="pixtools", audience="pixtools-api", lifetime_s=1)
    token = tokens.issue(key_id=uuid.uuid4(), tenant_id=None, scopes=["admin"])
    assert tokens.verify(token) is tokens.verify(token)  # the second answer comes from the remembered claims
    time.sleep(1.1)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token)
