"""The ingest worker's factory and composition root."""

from pixtools_ingest import subscribers
from pixtools_ingest.fetching import SourceFetching
from pixtools_ingest.handlers import Dependencies
from pixtools_ingest.settings import IngestSettings
from pixtools_platform.blobstore import BlobStore
from pixtools_platform.broker import Publisher
from pixtools_platform.fetch import FetchLimits
from pixtools_platform.logs import configure_logging
from pixtools_platform.netguard import AddressPolicy
from pixtools_platform.runtime import run
from pixtools_platform.telemetry import configure_tracing
from pixtools_platform.worker import CpuPool, StageWorker, Wiring


def create_app(settings: IngestSettings) -> StageWorker:
    """Build the ingest worker: source fetching, and CPU operations on a thread pool sized to the cores."""
    pool = CpuPool(settings.cpu_workers, "ingest-cpu")

    async def wire(blobs: BlobStore, publisher: Publisher) -> Wiring:
        deps = Dependencies(
            blobs=blobs,
            run_cpu=pool.run,
            announce=publisher.publish,
            max_pixels=settings.max_pixels,
            announce_after_s=settings.announce_after_s,
            fetching=source_fetching(settings),
        )
        return Wiring(handlers=subscribers.handlers(deps), on_exhausted=subscribers.on_exhausted)

    async def release() -> None:
        pool.close()

    return StageWorker(settings, service="ingest", routing_keys=subscribers.ROUTING_KEYS, wire=wire, release=release)


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
