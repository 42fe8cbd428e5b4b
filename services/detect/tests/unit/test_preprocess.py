"""Letterboxing: top-left, pad 114, BGR, values 0-255 unnormalised, YOLOX's truncating resize."""

import torch

from pixtools_detect.preprocess import PAD_VALUE, letterbox_batch, letterbox_ratio, resized_size

CPU = torch.device("cpu")


def _flat(height: int, width: int, rgb: tuple[int, int, int]) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.uint8).expand(height, width, 3).contiguous()


def test_wide_picture_sits_top_left_and_the_rest_is_114() -> None:
    batch, ratios = letterbox_batch([_flat(100, 200, (255, 0, 0))], (416, 416), CPU)
    assert ratios == [416 / 200]
    assert batch.shape == (1, 3, 416, 416)
    assert batch.dtype == torch.float32
    picture, padding = batch[0, :, :208], batch[0, :, 208:]
    assert torch.all(padding == PAD_VALUE)
    # Red in RGB is the last channel in BGR, and it stays at 255: no normalisation.
    assert torch.all(picture[2] == 255)
    assert torch.all(picture[:2] == 0)


def test_tall_picture_pads_on_the_right() -> None:
    batch, _ = letterbox_batch([_flat(640, 320, (0, 0, 200))], (416, 416), CPU)
    assert torch.all(batch[0, :, :, 208:] == PAD_VALUE)
    assert torch.all(batch[0, 0, :, :208] == 200)  # blue comes first in BGR


def test_model_sized_picture_passes_through_exactly() -> None:
    picture = torch.randint(0, 256, (416, 416, 3), dtype=torch.uint8)
    batch, ratios = letterbox_batch([picture], (416, 416), CPU)
    assert ratios == [1.0]
    assert torch.equal(batch[0], picture.permute(2, 0, 1)[[2, 1, 0]].float())


def test_small_pictures_are_scaled_up_like_yolox() -> None:
    assert letterbox_ratio(208, 104, (416, 416)) == 2.0
    assert resized_size(208, 104, 2.0) == (416, 208)


def test_resize_truncates_but_survives_float_rounding() -> None:
    ratio = letterbox_ratio(480, 640, (416, 416))
    assert resized_size(480, 640, ratio) == (312, 416)
    assert resized_size(427, 640, ratio) == (277, 416)  # 277.55 truncates, as YOLOX's int() does


def test_pictures_of_different_sizes_share_one_batch() -> None:
    batch, ratios = letterbox_batch([_flat(416, 416, (1, 2, 3)), _flat(50, 100, (9, 9, 9))], (416, 416), CPU)
    assert batch.shape == (2, 3, 416, 416)
    assert ratios == [1.0, 4.16]
    assert torch.all(batch[0, :, 0, 0] == torch.tensor([3.0, 2.0, 1.0]))
