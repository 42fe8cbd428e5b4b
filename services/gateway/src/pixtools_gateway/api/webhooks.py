"""The tenant's webhook signing secret."""

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import select

from pixtools_db import Tenant
from pixtools_gateway.api.deps import Session, Shared, WebhooksManager
from pixtools_gateway.api.limits import ReadLimited
from pixtools_gateway.handlers.tenants import rotate_webhook_secret
from pixtools_gateway.openapi import problems
from pixtools_gateway.responses import WebhookSecret

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.get(
    "/secret",
    response_model=WebhookSecret,
    summary="Read the webhook signing secret",
    responses=problems(429),
    dependencies=[ReadLimited],
)
async def read_secret(tenant_id: WebhooksManager, session: Session) -> WebhookSecret:
    """The secret that signs this tenant's webhooks."""
    tenant = await session.scalar(select(Tenant).where(Tenant.id == tenant_id))
    assert tenant is not None
    return WebhookSecret(secret=tenant.webhook_secret, previous_valid_until=tenant.previous_secret_expires_at)


@router.post(
    "/secret/rotate",
    response_model=WebhookSecret,
    summary="Rotate the webhook signing secret",
    responses=problems(429),
    dependencies=[ReadLimited],
)
async def rotate_secret(tenant_id: WebhooksManager, session: Session, shared: Shared) -> WebhookSecret:
    """Issue a new secret; webhooks carry signatures under both secrets until the grace period ends."""
    tenant = await rotate_webhook_secret(
        session, tenant_id=tenant_id, grace=timedelta(seconds=shared.settings.secret_grace_s)
    )
    await session.commit()
    return WebhookSecret(secret=tenant.webhook_secret, previous_valid_until=tenant.previous_secret_expires_at)
