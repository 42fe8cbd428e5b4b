"""TorchDenoiser: the async face of DnCNN inference, with tiles of concurrent images sharing forward passes."""

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from pixtools_denoise.errors import TooManyTiles, UnsupportedImage
from pixtools_denoise.model_files import Weights, build_model, load_weights
from pixtools_denoise.runner import SCALES, InferenceConfig, TileJob, TileRunner
from pixtools_denoise.tiling import plan_tiles
from pixtools_platform.batching import MicroBatcher

# Channels after the colour ones are alpha: grey, grey + alpha, RGB, RGB + alpha.
_COLOUR_CHANNELS = {1: 1, 2: 1, 3: 3, 4: 3}


class TorchDenoiser:
    """DnCNN on any image: tiled, micro-batched across concurrent calls, run on one worker thread off the loop."""

    def __init__(self, weights: Weights, config: InferenceConfig | None = None, *, name: str = "denoise") -> None:
        self._config = config or InferenceConfig()
        self._runner = TileRunner(build_model(weights), self._config)
        self._batcher: MicroBatcher[TileJob, None] = MicroBatcher(
            self._runner.run,
            max_batch=self._config.resolved_max_batch,
            max_wait_s=self._config.max_wait_s,
            name=name,
        )
        self.model_id = weights.model_id
        self.weights_sha256 = weights.sha256

    @classmethod
    def from_models_dir(cls, models_dir: Path, config: InferenceConfig | None = None) -> Self:
        """Load and verify the weights in `models_dir`; raises MissingWeights or InvalidWeights rather than guess."""
        return cls(load_weights(models_dir), config)

    @property
    def config(self) -> InferenceConfig:
        """The inference settings in use."""
        return self._config

    async def start(self) -> None:
        """Warm the model up off the event loop, then start the batching worker thread."""
        await asyncio.to_thread(self._runner.warm_up)
        await self._batcher.start()

    async def close(self) -> None:
        """Finish the tiles already submitted, then stop the worker thread."""
        await self._batcher.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    async def denoise(self, image: np.ndarray) -> np.ndarray:
        """Denoise an (H, W) or (H, W, C) image of uint8, uint16 or float32 and return one of the same shape and type.

        Integers are scaled to [0, 1] by their full range (255 or 65535), denoised, clamped and rounded back.
        float32 is taken as [0, 1] already and returned unclamped. Greyscale is denoised as three equal
        channels and returned as their mean. Alpha is copied through untouched. An image that needs more than
        `max_tiles` tiles is refused with TooManyTiles before any work starts.
        """
        planes, colour_channels = _planes(image)
        output = np.empty_like(image)
        targets = output[..., np.newaxis] if output.ndim == 2 else output
        height, width = planes.shape[:2]
        tiles = plan_tiles(height, width, tile_size=self._config.tile_size, margin=self._config.margin)
        if len(tiles) > self._config.max_tiles:
            raise TooManyTiles(
                f"a {width}x{height} image needs {len(tiles)} tiles of {self._config.tile_size} px; "
                f"a step may run at most {self._config.max_tiles}"
            )
        # Jobs only point into the input and output arrays: tile pixels exist just while their batch runs.
        await self._batcher.submit_many([TileJob(planes, targets, tile, colour_channels) for tile in tiles])
        return output


def _planes(image: np.ndarray) -> tuple[np.ndarray, int]:
    """The image as (H, W, C) without copying, and how many of its channels are colour."""
    if image.dtype not in SCALES:
        raise UnsupportedImage(f"cannot denoise {image.dtype} pixels; expected uint8, uint16 or float32")
    planes = image[..., np.newaxis] if image.ndim == 2 else image
    if planes.ndim != 3 or planes.shape[2] not in _COLOUR_CHANNELS:
        raise UnsupportedImage(f"cannot denoise an image of shape {image.shape}; expected (H, W) or (H, W, 1-4)")
    if planes.shape[0] < 1 or planes.shape[1] < 1:
        raise UnsupportedImage(f"cannot denoise an empty image of shape {image.shape}")
    return planes, _COLOUR_CHANNELS[planes.shape[2]]
