"""YOLOX input preparation: letterbox to the model size at the top-left, pad 114, BGR, values 0-255 unnormalised."""

import torch
import torch.nn.functional as F

PAD_VALUE = 114.0
# The model was trained on OpenCV-decoded BGR images.
_RGB_TO_BGR = [2, 1, 0]


def letterbox_ratio(height: int, width: int, input_size: tuple[int, int]) -> float:
    """Scale that fits a height x width picture inside the model input, keeping its aspect."""
    return min(input_size[0] / height, input_size[1] / width)


def resized_size(height: int, width: int, ratio: float) -> tuple[int, int]:
    """Size after scaling; truncated like YOLOX's reference resize, with a hair of slack so 416/640*640 stays 416."""
    return max(1, int(height * ratio + 1e-6)), max(1, int(width * ratio + 1e-6))


def _resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (H, W, 3) pixels, the way OpenCV's INTER_LINEAR does it: half-pixel centres, no antialias."""
    planar = pixels.permute(2, 0, 1)[None]  # an NCHW view of HWC memory, i.e. channels_last
    if planar.device.type == "cpu":
        # The CPU kernel resizes uint8 channels_last directly (about 18x faster than via float here) and rounds
        # to uint8 just as OpenCV does.
        resized = F.interpolate(planar, size=size, mode="bilinear", align_corners=False, antialias=False)
    else:
        # CUDA has no uint8 bilinear kernel.
        resized = F.interpolate(planar.float(), size=size, mode="bilinear", align_corners=False, antialias=False)
    return resized[0].permute(1, 2, 0)


def letterbox_into(target: torch.Tensor, pixels: torch.Tensor) -> float:
    """Write one RGB uint8 (H, W, 3) picture into a (3, h, w) float slot already filled with 114; return the ratio."""
    height, width = pixels.shape[0], pixels.shape[1]
    ratio = letterbox_ratio(height, width, (target.shape[1], target.shape[2]))
    if ratio != 1.0:
        pixels = _resize(pixels, resized_size(height, width, ratio))
    for channel in range(3):
        # copy_ converts the dtype and reorders RGB to BGR in one strided pass, with no temporaries.
        target[channel, : pixels.shape[0], : pixels.shape[1]].copy_(pixels[:, :, _RGB_TO_BGR[channel]])
    return ratio


def letterbox_batch(
    pictures: list[torch.Tensor], input_size: tuple[int, int], device: torch.device
) -> tuple[torch.Tensor, list[float]]:
    """Stack RGB uint8 (H, W, 3) pictures (already on `device`) into a letterboxed float batch; return the ratios."""
    batch = torch.full((len(pictures), 3, *input_size), PAD_VALUE, dtype=torch.float32, device=device)
    ratios = [letterbox_into(batch[index], picture) for index, picture in enumerate(pictures)]
    return batch, ratios
