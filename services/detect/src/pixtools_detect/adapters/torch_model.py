"""TorchDetector: YOLOX with sliced inference, batching the slices of every concurrent image together."""

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import torch

from pixtools_contracts import DetectParams
from pixtools_detect.errors import TooManySlices, UnknownClassNames
from pixtools_detect.inference import BatchInference, Tile, TileDetections
from pixtools_detect.merge import merge_windows
from pixtools_detect.model_files import DEFAULT_CLASSES_FILE, DEFAULT_MODEL_FILE
from pixtools_detect.network import YoloxNetwork, load_network
from pixtools_detect.results import DetectionResult, count_classes
from pixtools_detect.slicing import plan_windows
from pixtools_platform.batching import MicroBatcher


def default_device() -> torch.device:
    """CUDA when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TorchDetector:
    """Detects objects in RGB images; every forward pass runs in the micro-batcher's thread, never on the loop."""

    def __init__(
        self,
        network: YoloxNetwork,
        *,
        device: torch.device | str | None = None,
        batch_size: int = 8,
        max_wait_s: float = 0.005,
        max_slices: int = 600,
    ) -> None:
        self.network = network
        self.max_slices = max_slices
        self.device = torch.device(device) if device is not None else default_device()
        self._inference = BatchInference(network, self.device)
        self._batcher: MicroBatcher[Tile, TileDetections] = MicroBatcher(
            self._inference, max_batch=batch_size, max_wait_s=max_wait_s, name="detect"
        )
        self._class_ids = {name: index for index, name in enumerate(network.class_names)}

    @classmethod
    def from_models_dir(
        cls,
        models_dir: Path,
        *,
        model_file: str = DEFAULT_MODEL_FILE,
        classes_file: str = DEFAULT_CLASSES_FILE,
        device: torch.device | str | None = None,
        batch_size: int = 8,
        max_wait_s: float = 0.005,
        max_slices: int = 600,
    ) -> "TorchDetector":
        """Load the configured model files (blocking, once at startup); raises ModelFileMissing when one is absent."""
        network = load_network(models_dir, model_file=model_file, classes_file=classes_file)
        return cls(network, device=device, batch_size=batch_size, max_wait_s=max_wait_s, max_slices=max_slices)

    @property
    def model_id(self) -> str:
        """The model's name, for example 'yolox_nano'."""
        return self.network.model_id

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in model output order."""
        return self.network.class_names

    async def start(self) -> None:
        """Start the batching thread."""
        await self._batcher.start()

    async def close(self) -> None:
        """Finish queued batches and stop the batching thread."""
        await self._batcher.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def class_ids_for(self, names: Sequence[str] | None) -> tuple[int, ...] | None:
        """Model class ids for class names; UnknownClassNames lists the valid names when one is not known."""
        if names is None:
            return None
        unknown = [name for name in names if name not in self._class_ids]
        if unknown:
            raise UnknownClassNames(
                f"unknown class names {unknown} for {self.model_id}; valid names: {', '.join(self.class_names)}"
            )
        return tuple(sorted({self._class_ids[name] for name in names}))

    async def detect(self, image: np.ndarray, params: DetectParams) -> DetectionResult:
        """Detect objects in one RGB uint8 (H, W, 3) image as `params` ask: direct or sliced, filtered and merged."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(f"expected an RGB uint8 array of shape (H, W, 3), got {image.dtype} {image.shape}")
        class_ids = self.class_ids_for(params.classes)
        height, width = image.shape[:2]
        windows = plan_windows(width, height, params.sahi)
        if len(windows) > self.max_slices:
            raise TooManySlices(
                f"a {width}x{height} image needs {len(windows)} slices (tiles); "
                f"a step may run at most {self.max_slices}"
            )
        pixels = torch.from_numpy(np.require(image, requirements=["C_CONTIGUOUS", "WRITEABLE"]))
        tiles = [Tile(pixels, window, params.confidence, class_ids, params.max_detections) for window in windows]
        tile_detections = await self._batcher.submit_many(tiles)
        detections = await asyncio.to_thread(
            merge_windows,
            windows,
            tile_detections,
            sahi=params.sahi,
            class_names=self.class_names,
            max_detections=params.max_detections,
        )
        return DetectionResult(
            detections=detections,
            counts=count_classes(detections),
            model_id=self.model_id,
            model_sha256=self.network.sha256,
            width=width,
            height=height,
            slices=len(windows),
        )
