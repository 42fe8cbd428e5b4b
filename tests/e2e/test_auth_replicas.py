"""Two gateway processes on one database: a revoked or expired key, and its access tokens, stop on both within 1 s.

Each gateway caches verified keys for five minutes here, so only the NOTIFY path (or the expiry bound of the
cache) can end them in time.
"""

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .harness import Stack, stack_environment

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LONG_CACHE_S = "300"


@pytest.fixture
def replicas(infra, database_url, namespace, tmp_path) -> Iterator[list[str]]:
    """The base URLs of two gateway processes sharing the database and one token signing key."""
    signing_key = (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    env = stack_environment(
        amqp_url=infra.amqp_url, database_url=database_url, namespace=namespace, blob_dir=tmp_path / "blobs"
    )
    env |= {
        "PIXTOOLS_RELAY_ENABLED": "false",
        "PIXTOOLS_AUTH_CACHE_S": LONG_CACHE_S,
        "PIXTOOLS_TOKEN_SIGNING_KEY": signing_key,
    }
    stacks = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            stacks.append(Stack(env, tmp_path / name))
            stacks[-1].start("gateway")
        yield [stack.gateway_url for stack in stacks]
    finally:
        for stack in stacks:
            stack.stop_all()


def _bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def _status(url: str, credential: str) -> int:
    return httpx.get(f"{url}/v1/jobs", headers=_bearer(credential), timeout=5).status_code


def _seconds_until_refused(urls: list[str], credential: str, since: float, limit: float = 1.0) -> float:
    """Seconds from `since` (monotonic) until every replica answers 401; fails past `limit`."""
    pending = set(urls)
    while pending:
        pending = {url for url in pending if _status(url, credential) != 401}
        elapsed = time.monotonic() - since
        assert elapsed <= limit, f"{sorted(pending)} still accepted the credential after {elapsed:.2f} s"
        if pending:
            time.sleep(0.02)
    return time.monotonic() - since


def _create_key(url: str, key: str, **body: object) -> dict:
    response = httpx.post(f"{url}/v1/api-keys", json={"name": "replicas", **body}, headers=_bearer(key), timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_key_revoked_on_one_replica_stops_on_both_within_a_second(replicas, tenant_key):
    first, second = replicas
    victim = _create_key(first, tenant_key, scopes=["jobs:read"])
    token = httpx.post(f"{second}/v1/auth/token", headers=_bearer(victim["key"]), timeout=5).json()["access_token"]
    for url in replicas:
        for credential in (victim["key"], token, victim["key"]):  # the second read of each is from the cache
            assert _status(url, credential) == 200
    revoked = httpx.delete(f"{first}/v1/api-keys/{victim['id']}", headers=_bearer(tenant_key), timeout=5)
    assert revoked.status_code == 204
    since = time.monotonic()
    for credential in (victim["key"], token):
        print(f"refused on both after {_seconds_until_refused(replicas, credential, since):.3f} s")
    assert _status(second, tenant_key) == 200


def test_an_expired_key_stops_on_both_within_a_second_of_its_expiry(replicas, tenant_key):
    expires_at = datetime.now(UTC) + timedelta(seconds=3)
    brief = _create_key(replicas[0], tenant_key, scopes=["jobs:read"], expires_at=expires_at.isoformat())
    for url in replicas:
        assert _status(url, brief["key"]) == 200
        assert _status(url, brief["key"]) == 200
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
    print(f"refused on both {_seconds_until_refused(replicas, brief['key'], time.monotonic()):.3f} s after expiry")


def test_a_token_from_one_replica_works_on_the_other_and_its_refresh_rotates_there(replicas, tenant_key):
    first, second = replicas
    issued = httpx.post(f"{first}/v1/auth/token", headers=_bearer(tenant_key), timeout=5).json()
    assert _status(second, issued["access_token"]) == 200
    jwks = [httpx.get(f"{url}/.well-known/jwks.json", timeout=5).json() for url in replicas]
    assert jwks[0] == jwks[1]
    rotated = httpx.post(f"{second}/v1/auth/refresh", json={"refresh_token": issued["refresh_token"]}, timeout=5)
    assert rotated.status_code == 200
    with contextlib.closing(httpx.Client(timeout=5)) as client:
        reused = client.post(f"{first}/v1/auth/refresh", json={"refresh_token": issued["refresh_token"]})
        assert reused.status_code == 401
        assert (
            client.post(f"{first}/v1/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}).status_code
            == 401
        )
