"""Prometheus gauges of a connection pool, read from the pool at scrape time."""

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

POOL_CHECKED_OUT = Gauge(
    "pixtools_db_pool_checked_out", "Database connections checked out of the service's pool now.", ["service"]
)
POOL_CAPACITY = Gauge(
    "pixtools_db_pool_capacity",
    "Most connections the service's pool hands out at once (pool size plus overflow); checkouts beyond it wait.",
    ["service"],
)


def export_pool_metrics(engine: AsyncEngine, service: str) -> None:
    """Report `engine`'s pool as `service`'s; the last engine exported for a service is the one reported."""
    pool = engine.sync_engine.pool
    POOL_CHECKED_OUT.labels(service).set_function(pool.checkedout if isinstance(pool, QueuePool) else lambda: 0)
    POOL_CAPACITY.labels(service).set_function(lambda: pool_capacity(pool))


def pool_capacity(pool: object) -> float:
    """Size plus allowed overflow of a queue pool; infinity when overflow is unlimited, 0 for other pools."""
    if not isinstance(pool, QueuePool):
        return 0
    overflow = pool._max_overflow  # SQLAlchemy exposes the overflow limit only as this attribute
    return float("inf") if overflow < 0 else float(pool.size() + overflow)
