"""The ingest worker's factory and composition root."""

from contextlib import AsyncExitStack

from pixtools_ingest import routing
from pixtools_ingest.adapters.fetching import SourceFetching
from pixtools_ingest.handlers import Dependencies
from pixtools_ingest.settings import IngestSettings
from pixtools_platform.fetch import FetchLimits
from pixtools_platform.logs import configure_logging
from pixtools_platform.netguard import AddressPolicy
from pixtools_platform.runtime import run
from pixtools_platform.service import Service, blob_store, broker
from pixtools_platform.stage import CpuPool, consume_stage
from pixtools_platform.telemetry import configure_tracing


def create_app(settings: IngestSettings) -> Service:
    """Build the ingest worker: source fetching, and CPU operations on a thread pool sized to the cores."""

    async def compose(resources: AsyncExitStack) -> None:
        blobs = await resources.enter_async_context(blob_store(settings))
        messages = await resources.enter_async_context(broker(settings, routing.SERVICE))
        pool = resources.enter_context(CpuPool(settings.cpu_workers, "ingest-cpu"))
        deps = Dependencies(
            blobs=blobs,
            run_cpu=pool.run,
            announce=messages.publisher.publish,
            max_pixels=settings.max_pixels,
            announce_after_s=settings.announce_after_s,
            fetching=source_fetching(settings),
        )
        await consume_stage(resources, settings, broker=messages, blobs=blobs, stage=routing.stage(deps))

    return Service(routing.SERVICE, compose)


def source_fetching(settings: IngestSettings) -> SourceFetching:
    """How source URLs are fetched: public addresses on the allowed ports, allowlisted networks on any port."""
    return SourceFetching(
        addresses=AddressPolicy.parse(settings.fetch_allow_cidrs, ports=settings.fetch_allow_ports),
        limits=FetchLimits(
            max_bytes=settings.fetch_max_bytes,
            connect_timeout_s=settings.fetch_connect_timeout_s,
            total_timeout_s=settings.fetch_total_timeout_s,
        ),
        attempts=settings.fetch_attempts,
        backoff_s=settings.fetch_backoff_s,
    )


def main() -> None:
    """Console entry point: `pixtools-ingest`."""
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level, settings.log_json)
    configure_tracing("ingest", settings.otel_endpoint)
    run(lambda: create_app(settings))
