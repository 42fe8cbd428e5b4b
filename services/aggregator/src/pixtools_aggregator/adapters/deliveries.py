"""Webhook deliveries and endpoint health over SQLAlchemy, claimed with FOR UPDATE SKIP LOCKED."""

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_aggregator.ports import Attempt, DueDelivery, EndpointState
from pixtools_aggregator.webhooks import BreakerPolicy, signing_secrets
from pixtools_db import Tenant, WebhookDelivery, WebhookEndpoint


class SqlDeliveryStore:
    """Deliveries in Postgres; replicas share them without sending one twice at the same time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], breaker: BreakerPolicy) -> None:
        self._sessions = sessions
        self._breaker = breaker

    async def claim_due(self, *, now: datetime, limit: int, lease: timedelta) -> list[DueDelivery]:
        """Take due deliveries and push them `lease` into the future, so other replicas leave them alone."""
        async with self._sessions.begin() as session:
            rows = (
                await session.execute(
                    select(WebhookDelivery, Tenant)
                    .join(Tenant, Tenant.id == WebhookDelivery.tenant_id)
                    .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(limit)
                    .with_for_update(of=WebhookDelivery, skip_locked=True)
                )
            ).all()
            if not rows:
                return []
            urls = {delivery.url for delivery, _ in rows}
            endpoints = {
                endpoint.url: _state(endpoint)
                for endpoint in await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.url.in_(urls)))
            }
            claimed = []
            for delivery, tenant in rows:
                # If this replica dies mid-send, the delivery becomes due again when the lease runs out.
                delivery.next_attempt_at = now + lease
                claimed.append(
                    DueDelivery(
                        id=delivery.id,
                        url=delivery.url,
                        payload=delivery.payload,
                        traceparent=delivery.traceparent,
                        attempts=delivery.attempts,
                        created_at=delivery.created_at,
                        job_id=delivery.job_id,
                        secrets=signing_secrets(
                            tenant.webhook_secret,
                            tenant.previous_webhook_secret,
                            tenant.previous_secret_expires_at,
                            now,
                        ),
                        endpoint=endpoints.get(delivery.url, EndpointState()),
                    )
                )
            return claimed

    async def record(self, delivery: DueDelivery, attempt: Attempt, *, now: datetime) -> EndpointState | None:
        """Save the attempt on the delivery and its effect on the endpoint's breaker."""
        async with self._sessions.begin() as session:
            row = await session.get(WebhookDelivery, delivery.id, with_for_update=True)
            if row is not None and row.state == "pending":
                row.state = attempt.state
                if attempt.counted:
                    row.attempts += 1
                    row.last_status = attempt.status
                if attempt.error is not None:
                    row.last_error = attempt.error[:2000]
                if attempt.next_attempt_at is not None:
                    row.next_attempt_at = attempt.next_attempt_at
                if attempt.state == "delivered":
                    row.delivered_at = now
            if attempt.endpoint_effect is None:
                return None
            await session.execute(
                insert(WebhookEndpoint)
                .values(url=delivery.url, consecutive_failures=0)
                .on_conflict_do_nothing(index_elements=[WebhookEndpoint.url])
            )
            endpoint = await session.get(WebhookEndpoint, delivery.url, with_for_update=True, populate_existing=True)
            assert endpoint is not None  # inserted above, and endpoints are never deleted here
            state = self._breaker.after(_state(endpoint), attempt.endpoint_effect, now)
            endpoint.consecutive_failures = state.consecutive_failures
            endpoint.open_until = state.open_until
            endpoint.disabled_at = state.disabled_at
            return state


def _state(endpoint: WebhookEndpoint) -> EndpointState:
    return EndpointState(
        consecutive_failures=endpoint.consecutive_failures,
        open_until=endpoint.open_until,
        disabled_at=endpoint.disabled_at,
    )
