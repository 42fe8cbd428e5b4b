"""The tenant's API keys: create (the secret is shown once), list, revoke."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Response, Security

from pixtools_db import ApiKey
from pixtools_gateway.adapters.key_cache import Caller
from pixtools_gateway.api.deps import KeysManager, Session, caller
from pixtools_gateway.api.limits import ReadLimited
from pixtools_gateway.auth_models import ApiKeyList, ApiKeyView, CreatedApiKey, NewApiKey
from pixtools_gateway.errors import Forbidden, InvalidRequest, NotFound, StateConflict
from pixtools_gateway.handlers.api_keys import list_keys, revoke_key
from pixtools_gateway.handlers.tenants import create_api_key
from pixtools_gateway.openapi import problems
from pixtools_gateway.security import KEYS_MANAGE

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])
# The same dependency as KeysManager's (FastAPI runs it once): the credential itself, for the scopes it holds.
Manager = Annotated[Caller, Security(caller, scopes=[KEYS_MANAGE])]


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView.model_validate(row, from_attributes=True)


@router.post(
    "",
    status_code=201,
    response_model=CreatedApiKey,
    summary="Create an API key",
    responses=problems(403, 422, 429),
    dependencies=[ReadLimited],
)
async def create_key(
    body: NewApiKey, tenant_id: KeysManager, who: Manager, session: Session, response: Response
) -> CreatedApiKey:
    """A new key for the tenant, with scopes the calling credential holds; its secret is in this answer only."""
    scopes = list(dict.fromkeys(body.scopes))
    for scope in scopes:
        if scope not in who.scopes:
            raise Forbidden(f"cannot grant the '{scope}' scope: the calling credential does not hold it")
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise InvalidRequest(
            "expires_at must be in the future", errors=[{"loc": ["body", "expires_at"], "msg": "in the past"}]
        )
    row, key = await create_api_key(
        session, tenant_id=tenant_id, name=body.name, scopes=scopes, expires_at=body.expires_at
    )
    await session.commit()
    response.headers["Cache-Control"] = "no-store"
    return CreatedApiKey(**_view(row).model_dump(), key=key)


@router.get(
    "",
    response_model=ApiKeyList,
    summary="List the tenant's API keys",
    responses=problems(429),
    dependencies=[ReadLimited],
)
async def read_keys(tenant_id: KeysManager, session: Session) -> ApiKeyList:
    """Every key of the tenant, revoked ones included: names, prefixes, scopes and dates, never a secret."""
    return ApiKeyList(items=[_view(row) for row in await list_keys(session, tenant_id=tenant_id)])


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key",
    responses=problems(404, 409, 429),
    dependencies=[ReadLimited],
)
async def delete_key(key_id: uuid.UUID, tenant_id: KeysManager, who: Manager, session: Session) -> Response:
    """Revoke the key and end its refresh tokens; every gateway refuses it, and its access tokens, within a second.

    A key cannot revoke itself (409), so a client cannot lock itself out by mistake: revoke it with another key
    holding `keys:manage`, or with `pixtools-admin revoke-key`.
    """
    if key_id == who.key_id:
        raise StateConflict("a key cannot revoke itself: use another key with 'keys:manage' or pixtools-admin")
    if await revoke_key(session, key_id=key_id, tenant_id=tenant_id) is None:
        raise NotFound("the tenant has no API key with that id")
    await session.commit()
    return Response(status_code=204)
