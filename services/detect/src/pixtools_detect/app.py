"""The detect worker's factory and composition root."""

import logging
import sys
from contextlib import AsyncExitStack

from pixtools_detect import routing
from pixtools_detect.adapters.torch_model import TorchDetector
from pixtools_detect.errors import DetectError
from pixtools_detect.handlers import Dependencies
from pixtools_detect.settings import DetectSettings
from pixtools_platform.logs import configure_logging
from pixtools_platform.runtime import run
from pixtools_platform.service import Service, blob_store, broker
from pixtools_platform.stage import CpuPool, consume_stage
from pixtools_platform.telemetry import configure_tracing

log = logging.getLogger(__name__)


def create_app(settings: DetectSettings, detector: TorchDetector) -> Service:
    """Build the detect worker around a loaded detector."""

    async def compose(resources: AsyncExitStack) -> None:
        blobs = await resources.enter_async_context(blob_store(settings))
        messages = await resources.enter_async_context(broker(settings, routing.SERVICE))
        # Decoding and overlays run here; inference runs in the micro-batcher's own thread.
        pool = resources.enter_context(CpuPool(2, "detect-io"))
        await resources.enter_async_context(detector)
        deps = Dependencies(
            blobs=blobs,
            detector=detector,
            run_cpu=pool.run,
            announce=messages.publisher.publish,
            max_pixels=settings.max_pixels,
            overlay_quality=settings.overlay_quality,
            announce_after_s=settings.announce_after_s,
        )
        await consume_stage(resources, settings, broker=messages, blobs=blobs, stage=routing.stage(deps))

    return Service(routing.SERVICE, compose)


def main() -> None:
    """Load the model, then run the worker until SIGTERM; missing model files stop it before it connects."""
    settings = DetectSettings()
    configure_logging("detect", settings.log_level, settings.log_json)
    configure_tracing("detect", settings.otel_endpoint)
    try:
        detector = TorchDetector.from_models_dir(
            settings.models_dir,
            model_file=settings.model_file,
            classes_file=settings.classes_file,
            device=settings.device,
            batch_size=settings.batch_size,
            max_wait_s=settings.max_wait_s,
            max_slices=settings.max_slices,
        )
    except DetectError as error:
        sys.exit(f"pixtools-detect: {error}")
    log.info("model loaded", extra={"model": detector.model_id, "sha256": detector.network.sha256})
    run(lambda: create_app(settings, detector))
