"""The database half of the backlog sample: the outbox backlog and the webhook breakers, read in one transaction."""

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixtools_aggregator.backlog import BreakerState, DatabaseBacklog
from pixtools_db import Outbox, WebhookEndpoint

TRIPPED_LIMIT = 1000
"""Most tripped endpoints reported by host; beyond it the per-state counts still hold."""


async def read_database_backlog(sessions: async_sessionmaker[AsyncSession]) -> DatabaseBacklog:
    """Unpublished outbox rows and the oldest one's age (via the partial index on them), and every breaker's state."""
    waiting = Outbox.published_at.is_(None)
    state = case(
        (WebhookEndpoint.disabled_at.is_not(None), "disabled"),
        (WebhookEndpoint.open_until > func.now(), "open"),
        else_="closed",
    )
    async with sessions() as session:
        unpublished = await session.scalar(select(func.count()).select_from(Outbox).where(waiting))
        oldest_age = await session.scalar(
            select(func.extract("epoch", func.now() - Outbox.created_at)).where(waiting).order_by(Outbox.id).limit(1)
        )
        counts = (await session.execute(select(state, func.count()).group_by(state))).all()
        tripped = (
            await session.execute(
                select(WebhookEndpoint.url, state)
                .where(state != "closed")
                .order_by(WebhookEndpoint.url)
                .limit(TRIPPED_LIMIT)
            )
        ).all()
    breakers: dict[BreakerState, int] = {"closed": 0, "open": 0, "disabled": 0}
    breakers.update({_breaker_state(name): count for name, count in counts})
    return DatabaseBacklog(
        unpublished=unpublished or 0,
        oldest_age_s=None if oldest_age is None else float(oldest_age),
        breakers=breakers,
        tripped=[(url, _breaker_state(name)) for url, name in tripped],
    )


def _breaker_state(name: str) -> BreakerState:
    return "disabled" if name == "disabled" else "open" if name == "open" else "closed"
