"""The denoise worker's factory and composition root."""

import logging
import sys
from contextlib import AsyncExitStack

import torch

from pixtools_denoise import routing
from pixtools_denoise.adapters.torch_model import TorchDenoiser
from pixtools_denoise.errors import DenoiseError
from pixtools_denoise.handlers import Dependencies
from pixtools_denoise.runner import InferenceConfig
from pixtools_denoise.settings import DenoiseSettings
from pixtools_platform.logs import configure_logging
from pixtools_platform.runtime import run
from pixtools_platform.service import Service, blob_store, broker
from pixtools_platform.stage import CpuPool, consume_stage
from pixtools_platform.telemetry import configure_tracing

log = logging.getLogger(__name__)


def create_app(settings: DenoiseSettings, denoiser: TorchDenoiser) -> Service:
    """Build the denoise worker around a loaded denoiser."""

    async def compose(resources: AsyncExitStack) -> None:
        blobs = await resources.enter_async_context(blob_store(settings))
        messages = await resources.enter_async_context(broker(settings, routing.SERVICE))
        # Decoding and encoding run here; tiles run on the micro-batcher's own thread.
        pool = resources.enter_context(CpuPool(2, "denoise-codec"))
        await resources.enter_async_context(denoiser)
        deps = Dependencies(
            blobs=blobs,
            denoiser=denoiser,
            run_cpu=pool.run,
            announce=messages.publisher.publish,
            max_pixels=settings.max_pixels,
            output_quality=settings.output_quality,
            announce_after_s=settings.announce_after_s,
        )
        await consume_stage(resources, settings, broker=messages, blobs=blobs, stage=routing.stage(deps))

    return Service(routing.SERVICE, compose)


def main() -> None:
    """Load the weights, then run the worker until SIGTERM; missing or wrong weights stop it before it connects."""
    settings = DenoiseSettings()
    configure_logging("denoise", settings.log_level, settings.log_json)
    configure_tracing("denoise", settings.otel_endpoint)
    config = InferenceConfig(
        device=settings.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        precision=settings.precision,
        tile_size=settings.tile_size,
        max_batch=settings.max_batch,
        max_tiles=settings.max_tiles,
        max_wait_s=settings.max_wait_s,
    )
    try:
        denoiser = TorchDenoiser.from_models_dir(settings.models_dir, config)
    except DenoiseError as error:
        sys.exit(f"pixtools-denoise: {error}")
    log.info("weights loaded", extra={"model": denoiser.model_id, "sha256": denoiser.weights_sha256})
    run(lambda: create_app(settings, denoiser))
