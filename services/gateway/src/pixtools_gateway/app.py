"""The gateway's factory and composition root."""

import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import uvicorn
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.types import ASGIApp

from pixtools_db import create_engine, session_factory
from pixtools_db.outbox import OutboxRelay
from pixtools_db.pool_metrics import export_pool_metrics
from pixtools_gateway.access_tokens import AccessTokens
from pixtools_gateway.adapters.key_cache import KeyCache
from pixtools_gateway.adapters.key_usage import KeyUsage
from pixtools_gateway.adapters.notifications import JobNotifications
from pixtools_gateway.api import (
    admin,
    auth,
    batches,
    docs,
    health,
    jobs,
    keys,
    operations,
    output_links,
    pages,
    webhooks,
)
from pixtools_gateway.api.deps import Resources
from pixtools_gateway.api.limits import RateLimitHeaders
from pixtools_gateway.early_refusals import EarlyRefusals, HeldRefusals, RefusalMemory
from pixtools_gateway.errors import install_problem_handlers
from pixtools_gateway.fair_share import FairShare
from pixtools_gateway.handlers.tenants import ensure_dev_tenant
from pixtools_gateway.limiting import Limiting
from pixtools_gateway.middleware import HeadLimits, RequestTimer
from pixtools_gateway.openapi import install_openapi
from pixtools_gateway.outages import install_outage_handlers
from pixtools_gateway.output_links import OutputLinks
from pixtools_gateway.settings import GatewaySettings
from pixtools_gateway.slow_clients import BodyDeadline, head_timeout_protocol
from pixtools_gateway.webhook_docs import webhooks as webhook_docs
from pixtools_platform.logs import configure_logging
from pixtools_platform.service import Service, blob_store, broker
from pixtools_platform.telemetry import configure_tracing


def create_app(settings: GatewaySettings) -> FastAPI:
    """Build the gateway app; nothing connects until the lifespan starts."""

    # Built before anything connects: a configured key that does not load stops the start here.
    access_tokens = AccessTokens.from_settings(settings)

    async def compose(app: FastAPI, resources: AsyncExitStack) -> None:
        engine = create_engine(settings.database_url)
        resources.push_async_callback(engine.dispose)
        export_pool_metrics(engine, "gateway")
        sessions = session_factory(engine)
        if settings.seed_dev_tenant:
            async with sessions.begin() as session:
                await ensure_dev_tenant(session, key=settings.dev_api_key)
        blobs = await resources.enter_async_context(blob_store(settings))
        messages = await resources.enter_async_context(broker(settings, "gateway"))
        if settings.relay_enabled:
            # It publishes what each request's transaction staged as the transaction commits.
            relay = OutboxRelay(sessions, messages.publisher, poll_s=settings.relay_poll_s)
            relay.start()
            resources.push_async_callback(relay.stop)
        # One listening connection per process carries the key changes, and the job and batch changes while a
        # stream waits.
        key_cache = KeyCache(settings.database_url, settings.auth_cache_s)
        await key_cache.start()
        resources.push_async_callback(key_cache.stop)
        notifications = JobNotifications(key_cache)
        resources.push_async_callback(notifications.close)
        key_usage = KeyUsage(engine, settings.key_last_used_interval_s)
        key_usage.start()
        resources.push_async_callback(key_usage.stop)
        app.state.broker = messages.connection
        reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        links = OutputLinks.from_settings(settings)
        app.state.resources = Resources(
            settings, sessions, reader, blobs, notifications, key_cache, key_usage, access_tokens, links
        )
        app.state.limiting = Limiting(settings, reader)
        resources.push_async_callback(app.state.limiting.close)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Service("gateway", functools.partial(compose, app)):
            # Objects alive after start-up live for the process: keep the collector from rescanning them.
            gc.freeze()
            yield

    app = FastAPI(
        title="PixTools",
        version="0.1.0",
        summary="Image processing and vision pipelines as a service.",
        lifespan=lifespan,
        # Served from local assets by the docs router instead of FastAPI's CDN-backed pages.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    install_outage_handlers(app)
    for module in (jobs, output_links, batches, operations, webhooks, keys, auth, admin, health, docs, pages):
        app.include_router(module.router)
    app.mount(docs.ASSETS, docs.assets(), name="docs-assets")
    app.mount(pages.ASSETS, pages.assets(), name="console-assets")
    app.webhooks.include_router(webhook_docs)
    install_openapi(app)

    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodyDeadline, timeout_s=settings.request_body_timeout_s)
    app.add_middleware(RequestTimer)
    # Added last, so it runs first: an oversized head is refused before timing, tracing or any route.
    app.add_middleware(
        HeadLimits,
        max_count=settings.max_header_count,
        max_bytes=settings.max_header_bytes,
        max_target_bytes=settings.max_target_bytes,
    )
    # One server span per request; the instrumentation's extra span for every body chunk received and every
    # response message sent told nothing the server span does not, and cost several spans per upload.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"])
    _share_and_refuse_before_everything(app, settings)
    return app


def _share_and_refuse_before_everything(app: FastAPI, settings: GatewaySettings) -> None:
    """Put `EarlyRefusals`, then `FairShare`, outside every other layer, tracing and error handling included.

    A refusal that still holds is repeated for a dictionary lookup, with no span, timing or routing, after a hold
    that makes a client ignoring `Retry-After` wait instead of the gateway's event loop; it is outside the fair
    share, so a held refusal does not take one of its key's places. A flood from one credential is parked a few
    requests past its share: one tenant's flood then costs the event loop, and the other tenants waiting on it,
    as little as it can. Starlette builds its layers on first use, and the tracing
    instrumentation wraps that build; this wraps both.
    """
    app.state.refusals = RefusalMemory()
    build = app.build_middleware_stack

    def build_with_limits_outside() -> ASGIApp:
        held = HeldRefusals(
            app.state.refusals,
            hold_s=settings.refusal_hold_s,
            spread_s=settings.refusal_hold_spread_s,
            max_held=settings.refusals_held_max,
        )
        sharing = FairShare(build(), per_credential=settings.requests_in_progress_per_key, refusal=held.refusal)
        return EarlyRefusals(sharing, held)

    app.build_middleware_stack = build_with_limits_outside  # type: ignore[method-assign]


def main() -> None:
    """Console entry point: `pixtools-gateway` serves the API."""
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_json)
    configure_tracing("gateway", settings.otel_endpoint)
    logging.getLogger(__name__).info("serving HTTP", extra={"http_implementation": settings.http_implementation})
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=int(settings.keep_alive_s),
        # uvicorn has no timeout on reading a request's head: this protocol adds one (see slow_clients).
        http=head_timeout_protocol(settings.request_head_timeout_s, settings.http_implementation),
        # h11's own cap on an unfinished head, for deployments that run it instead of httptools.
        h11_max_incomplete_event_size=settings.max_header_bytes + settings.max_target_bytes,
    )
