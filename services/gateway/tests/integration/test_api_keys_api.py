"""API keys over HTTP on real Postgres: created with scopes and shown once, listed without secrets, revoked at once."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from pixtools_db import ApiKey
from pixtools_gateway.security import hash_api_key

from .admin_support import gateway, new_admin_key

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _create(client, key: str, **body) -> dict:
    response = await client.post("/v1/api-keys", json={"name": "test", **body}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()


async def _refused_within(client, headers: dict[str, str], seconds: float) -> float:
    """Seconds until a read answers 401; fails if that takes longer than `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if (await client.get("/v1/jobs", headers=headers)).status_code == 401:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    pytest.fail(f"still accepted after {seconds} s")


async def test_a_new_key_is_shown_once_and_listed_without_its_secret(api, tenant_key, db):
    created = await _create(api.client, tenant_key, name="ci reader", scopes=["jobs:read", "jobs:read"])
    assert created["key"].startswith("pxt_")
    assert created["scopes"] == ["jobs:read"]
    assert created["name"] == "ci reader"
    listed = await api.client.get("/v1/api-keys", headers=bearer(tenant_key))
    assert listed.status_code == 200
    items = {item["id"]: item for item in listed.json()["items"]}
    assert set(items[created["id"]]) == {
        "id", "name", "prefix", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at",
    }  # fmt: skip
    assert created["key"].startswith(items[created["id"]]["prefix"])
    assert created["key"] not in listed.text
    assert hash_api_key(created["key"]) not in listed.text
    assert len(items) == 2  # the tenant's first key and this one
    async with db() as session:
        stored = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(created["key"])))
    assert stored is not None
    assert stored.scopes == ["jobs:read"]


async def test_a_read_only_key_cannot_submit_or_manage_keys(api, tenant_key):
    reader = (await _create(api.client, tenant_key, scopes=["jobs:read"]))["key"]
    assert (await api.client.get("/v1/jobs", headers=bearer(reader))).status_code == 200
    submitted = await api.client.post(
        "/v1/jobs", json={"source_url": "http://127.0.0.1:9/a.jpg", "pipeline": []}, headers=bearer(reader)
    )
    assert submitted.status_code == 403
    assert submitted.headers["content-type"] == "application/problem+json"
    assert submitted.json()["type"].endswith("/forbidden")
    assert "'jobs:write'" in submitted.json()["detail"]
    assert 'scope="jobs:write"' in submitted.headers["www-authenticate"]
    for method, path in (("GET", "/v1/api-keys"), ("POST", "/v1/api-keys")):
        refused = await api.client.request(
            method, path, json={"name": "x", "scopes": ["jobs:read"]}, headers=bearer(reader)
        )
        assert refused.status_code == 403
        assert "'keys:manage'" in refused.json()["detail"]
    secret = await api.client.get("/v1/webhooks/secret", headers=bearer(reader))
    assert secret.status_code == 403
    assert "'webhooks:manage'" in secret.json()["detail"]


async def test_a_key_grants_only_scopes_it_holds_and_never_admin(api, tenant_key):
    manager = (await _create(api.client, tenant_key, scopes=["keys:manage", "jobs:read"]))["key"]
    widened = await api.client.post(
        "/v1/api-keys", json={"name": "wider", "scopes": ["jobs:write"]}, headers=bearer(manager)
    )
    assert widened.status_code == 403
    assert "'jobs:write'" in widened.json()["detail"]
    narrower = await api.client.post(
        "/v1/api-keys", json={"name": "narrower", "scopes": ["jobs:read"]}, headers=bearer(manager)
    )
    assert narrower.status_code == 201
    admin = await api.client.post(
        "/v1/api-keys", json={"name": "root", "scopes": ["admin"]}, headers=bearer(tenant_key)
    )
    assert admin.status_code == 403
    assert "'admin'" in admin.json()["detail"]


async def test_expiry_in_the_past_and_unknown_scopes_are_invalid(api, tenant_key):
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await api.client.post(
        "/v1/api-keys", json={"name": "old", "scopes": ["jobs:read"], "expires_at": past}, headers=bearer(tenant_key)
    )
    assert response.status_code == 422
    unknown = await api.client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["jobs:delete"]}, headers=bearer(tenant_key)
    )
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"


async def test_a_tenant_cannot_list_or_revoke_another_tenants_keys(api, tenant_key, other_tenant_key):
    mine = await _create(api.client, tenant_key, scopes=["jobs:read"])
    theirs = await api.client.get("/v1/api-keys", headers=bearer(other_tenant_key))
    assert mine["id"] not in theirs.text
    revoked = await api.client.delete(f"/v1/api-keys/{mine['id']}", headers=bearer(other_tenant_key))
    assert revoked.status_code == 404
    assert revoked.headers["content-type"] == "application/problem+json"
    assert (await api.client.get("/v1/jobs", headers=bearer(mine["key"]))).status_code == 200


async def test_admin_keys_reach_only_the_admin_api_and_tenant_keys_never_reach_it(api, tenant_key, database_url):
    admin_key = await new_admin_key(database_url)
    refused = await api.client.get("/v1/jobs", headers=bearer(admin_key))
    assert refused.status_code == 403
    assert "'jobs:read'" in refused.json()["detail"]
    assert (await api.client.get("/v1/api-keys", headers=bearer(admin_key))).status_code == 403
    tenant_refused = await api.client.get("/v1/admin/stats", headers=bearer(tenant_key))
    assert tenant_refused.status_code == 403
    assert "'admin'" in tenant_refused.json()["detail"]


async def test_a_revoked_key_is_refused_at_once_despite_a_long_cache(gateway_settings, tenant_key):
    settings = gateway_settings.model_copy(update={"auth_cache_s": 300.0})
    async with gateway(settings) as client:
        victim = await _create(client, tenant_key, scopes=["jobs:read"])
        for _ in range(3):  # cached now
            assert (await client.get("/v1/jobs", headers=bearer(victim["key"]))).status_code == 200
        assert (await client.delete(f"/v1/api-keys/{victim['id']}", headers=bearer(tenant_key))).status_code == 204
        assert await _refused_within(client, bearer(victim["key"]), 1.0) < 1.0
        listed = (await client.get("/v1/api-keys", headers=bearer(tenant_key))).json()["items"]
        assert next(item for item in listed if item["id"] == victim["id"])["revoked_at"] is not None
        assert (await client.delete(f"/v1/api-keys/{victim['id']}", headers=bearer(tenant_key))).status_code == 204


async def test_a_key_revoked_in_the_database_is_refused_within_a_second(gateway_settings, tenant_key, db):
    settings = gateway_settings.model_copy(update={"auth_cache_s": 300.0})
    async with gateway(settings) as client:
        assert (await client.get("/v1/jobs", headers=bearer(tenant_key))).status_code == 200
        async with db.begin() as session:
            await session.execute(
                text("UPDATE api_keys SET revoked_at = now() WHERE key_hash = :hash"),
                {"hash": hash_api_key(tenant_key)},
            )
        await _refused_within(client, bearer(tenant_key), 1.0)


async def test_a_cached_key_never_outlives_its_expiry(gateway_settings, tenant_key):
    settings = gateway_settings.model_copy(update={"auth_cache_s": 300.0})
    async with gateway(settings) as client:
        expires_at = datetime.now(UTC) + timedelta(seconds=2)
        brief = await _create(client, tenant_key, scopes=["jobs:read"], expires_at=expires_at.isoformat())
        assert (await client.get("/v1/jobs", headers=bearer(brief["key"]))).status_code == 200
        await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
        # No notification is sent at expiry: the cache entry itself ends there.
        assert (await client.get("/v1/jobs", headers=bearer(brief["key"]))).status_code == 401


async def test_last_use_is_recorded_off_the_request_path_at_most_once_an_interval(gateway_settings, tenant_key, db):
    async with gateway(gateway_settings) as client:
        key = await _create(client, tenant_key, scopes=["jobs:read"])
        assert key["last_used_at"] is None

        async def last_used() -> datetime | None:
            async with db() as session:
                return await session.scalar(
                    select(ApiKey.last_used_at).where(ApiKey.key_hash == hash_api_key(key["key"]))
                )

        assert (await client.get("/v1/jobs", headers=bearer(key["key"]))).status_code == 200
        for _ in range(30):  # written by the background flush, about a second later
            if (first := await last_used()) is not None:
                break
            await asyncio.sleep(0.1)
        assert first is not None
        for _ in range(5):
            assert (await client.get("/v1/jobs", headers=bearer(key["key"]))).status_code == 200
        await asyncio.sleep(1.5)  # more than a flush period: a second write would have landed
        assert await last_used() == first


async def test_a_key_cannot_revoke_itself_and_stays_usable(api, tenant_key):
    own = next(
        item
        for item in (await api.client.get("/v1/api-keys", headers=bearer(tenant_key))).json()["items"]
        if tenant_key.startswith(item["prefix"])
    )
    refused = await api.client.delete(f"/v1/api-keys/{own['id']}", headers=bearer(tenant_key))
    assert refused.status_code == 409
    assert "cannot revoke itself" in refused.json()["detail"]
    assert (await api.client.get("/v1/jobs", headers=bearer(tenant_key))).status_code == 200
