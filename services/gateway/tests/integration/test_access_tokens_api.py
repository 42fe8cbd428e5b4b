"""Access tokens on real Postgres: issued for a key, verified by anyone with the JWKS, refreshed once per token."""

import asyncio
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from pixtools_gateway.access_tokens import key_id_of

from .admin_support import gateway

pytestmark = pytest.mark.integration


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def token_settings(gateway_settings, signing_key):
    return gateway_settings.model_copy(update={"token_signing_key": SecretStr(pem(signing_key))})


async def _tokens(client, key: str) -> dict:
    response = await client.post("/v1/auth/token", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def _refresh(client, refresh_token: str):
    return await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


async def test_a_token_works_on_every_endpoint_and_verifies_with_the_published_jwks(token_settings, tenant_key):
    async with gateway(token_settings) as client:
        issued = await _tokens(client, tenant_key)
        assert issued["token_type"] == "Bearer"
        assert issued["expires_in"] == 900
        assert (await client.get("/v1/jobs", headers=bearer(issued["access_token"]))).status_code == 200
        assert (await client.get("/v1/api-keys", headers=bearer(issued["access_token"]))).status_code == 200
        jwks = (await client.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(issued["access_token"])
    assert header["alg"] == "EdDSA"
    published = {key["kid"]: key for key in jwks["keys"]}
    verifying_key = jwt.PyJWK(published[header["kid"]]).key
    claims = jwt.decode(
        issued["access_token"], verifying_key, algorithms=["EdDSA"], audience="pixtools-api", issuer="pixtools"
    )
    assert claims["exp"] - claims["iat"] == 900
    assert claims["scope"].split() == ["jobs:read", "jobs:write", "keys:manage", "webhooks:manage"]
    assert claims["tenant"]
    assert claims["sub"]


async def test_a_token_carries_its_keys_scopes_only(token_settings, tenant_key):
    async with gateway(token_settings) as client:
        reader = await client.post(
            "/v1/api-keys", json={"name": "reader", "scopes": ["jobs:read"]}, headers=bearer(tenant_key)
        )
        token = (await _tokens(client, reader.json()["key"]))["access_token"]
        assert (await client.get("/v1/jobs", headers=bearer(token))).status_code == 200
        submitted = await client.post(
            "/v1/jobs", json={"source_url": "http://127.0.0.1:9/a.jpg", "pipeline": []}, headers=bearer(token)
        )
        assert submitted.status_code == 403
        assert "'jobs:write'" in submitted.json()["detail"]
        # A token cannot mint more tokens: only a key can.
        assert (await client.post("/v1/auth/token", headers=bearer(token))).status_code == 403


async def test_an_expired_token_is_refused(token_settings, tenant_key):
    async with gateway(token_settings.model_copy(update={"access_token_ttl_s": 1})) as client:
        token = (await _tokens(client, tenant_key))["access_token"]
        assert (await client.get("/v1/jobs", headers=bearer(token))).status_code == 200
        await asyncio.sleep(2.1)
        refused = await client.get("/v1/jobs", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert "expired" in refused.json()["detail"]
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_tokens_with_a_wrong_audience_issuer_signature_or_key_id_are_refused(
    token_settings, signing_key, tenant_key
):
    async with gateway(token_settings) as client:
        good = jwt.decode((await _tokens(client, tenant_key))["access_token"], options={"verify_signature": False})
        kid = key_id_of(signing_key.public_key())
        stranger = Ed25519PrivateKey.generate()
        forged = {
            "wrong audience": jwt.encode({**good, "aud": "someone-else"}, signing_key, "EdDSA", {"kid": kid}),
            "wrong issuer": jwt.encode({**good, "iss": "evil"}, signing_key, "EdDSA", {"kid": kid}),
            "wrong signature": jwt.encode(good, stranger, "EdDSA", {"kid": kid}),
            "unknown kid": jwt.encode(good, stranger, "EdDSA", {"kid": key_id_of(stranger.public_key())}),
            "no kid": jwt.encode(good, signing_key, "EdDSA"),
            "unsigned": jwt.encode(good, None, "none", {"kid": kid}),
        }
        assert (
            await client.get("/v1/jobs", headers=bearer(jwt.encode(good, signing_key, "EdDSA", {"kid": kid})))
        ).status_code == 200
        for reason, token in forged.items():
            response = await client.get("/v1/jobs", headers=bearer(token))
            assert response.status_code == 401, reason
            assert response.headers["content-type"] == "application/problem+json", reason


async def test_tokens_of_a_previous_signing_key_still_verify_after_rotation(gateway_settings, tenant_key):
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    async with gateway(gateway_settings.model_copy(update={"token_signing_key": SecretStr(pem(old))})) as client:
        token = (await _tokens(client, tenant_key))["access_token"]
    rotated = gateway_settings.model_copy(
        update={"token_signing_key": SecretStr(pem(new)), "token_previous_public_keys": [public_pem(old)]}
    )
    async with gateway(rotated) as client:
        kids = {key["kid"] for key in (await client.get("/.well-known/jwks.json")).json()["keys"]}
        assert kids == {key_id_of(old.public_key()), key_id_of(new.public_key())}
        assert (await client.get("/v1/jobs", headers=bearer(token))).status_code == 200
        fresh = (await _tokens(client, tenant_key))["access_token"]
        assert jwt.get_unverified_header(fresh)["kid"] == key_id_of(new.public_key())


async def test_refresh_rotates_and_a_reused_token_ends_the_whole_family(token_settings, tenant_key):
    async with gateway(token_settings) as client:
        first = await _tokens(client, tenant_key)
        second = await _refresh(client, first["refresh_token"])
        assert second.status_code == 200
        assert second.headers["cache-control"] == "no-store"
        rotated = second.json()
        assert rotated["refresh_token"] != first["refresh_token"]
        assert (await client.get("/v1/jobs", headers=bearer(rotated["access_token"]))).status_code == 200
        reused = await _refresh(client, first["refresh_token"])
        assert reused.status_code == 401
        assert "already used" in reused.json()["detail"]
        assert reused.headers["www-authenticate"].startswith("Bearer")
        # The thief replayed the old token; the victim's newer one is revoked with it.
        assert (await _refresh(client, rotated["refresh_token"])).status_code == 401
        # Another session of the same key is a different family and goes on.
        other = await _tokens(client, tenant_key)
        assert (await _refresh(client, other["refresh_token"])).status_code == 200


async def test_a_refresh_past_the_sessions_absolute_lifetime_is_refused_and_ends_the_session(
    token_settings, tenant_key
):
    async with gateway(token_settings.model_copy(update={"refresh_family_lifetime_s": 2})) as client:
        first = await _tokens(client, tenant_key)
        second = await _refresh(client, first["refresh_token"])
        assert second.status_code == 200, second.text
        await asyncio.sleep(2.1)
        late = await _refresh(client, second.json()["refresh_token"])
        assert late.status_code == 401
        assert late.headers["content-type"] == "application/problem+json"
        assert "older than its limit of 2 s" in late.json()["detail"]
        assert late.headers["www-authenticate"].startswith("Bearer")
        # Its family is revoked: the token sent is used up and nothing of the session is left.
        again = await _refresh(client, second.json()["refresh_token"])
        assert again.status_code == 401
        # A new session of the same key starts its own lifetime.
        fresh = await _tokens(client, tenant_key)
        assert (await _refresh(client, fresh["refresh_token"])).status_code == 200


async def test_revoking_the_key_ends_its_access_tokens_and_refresh_tokens(token_settings, tenant_key):
    async with gateway(token_settings.model_copy(update={"auth_cache_s": 300.0})) as client:
        extra = (
            await client.post("/v1/api-keys", json={"name": "app", "scopes": ["jobs:read"]}, headers=bearer(tenant_key))
        ).json()
        issued = await _tokens(client, extra["key"])
        assert (await client.get("/v1/jobs", headers=bearer(issued["access_token"]))).status_code == 200
        assert (await client.delete(f"/v1/api-keys/{extra['id']}", headers=bearer(tenant_key))).status_code == 204
        started = time.monotonic()
        while (await client.get("/v1/jobs", headers=bearer(issued["access_token"]))).status_code != 401:
            assert time.monotonic() - started < 1.0, "the token outlived its key by more than a second"
            await asyncio.sleep(0.02)
        assert (await _refresh(client, issued["refresh_token"])).status_code == 401


async def test_two_concurrent_uses_of_one_refresh_token_do_not_both_succeed(token_settings, tenant_key):
    async with gateway(token_settings) as client:
        for _ in range(5):
            issued = await _tokens(client, tenant_key)
            answers = await asyncio.gather(*(_refresh(client, issued["refresh_token"]) for _ in range(2)))
            statuses = sorted(answer.status_code for answer in answers)
            assert statuses in ([200, 401], [401, 401]), statuses
            for answer in answers:
                if answer.status_code == 200:
                    # The loser saw a reuse and revoked the family, the winner's new token included.
                    assert (await _refresh(client, answer.json()["refresh_token"])).status_code == 401


async def test_an_unknown_refresh_token_is_a_401_problem(token_settings):
    async with gateway(token_settings) as client:
        response = await _refresh(client, "pxr_not-a-token")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
