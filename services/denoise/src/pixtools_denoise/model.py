"""DnCNN colour blind, laid out exactly like KAIR's state dict so its release files load strictly."""

import torch
from torch import nn

CHANNELS = 3
FEATURES = 64
CONV_LAYERS = 20
# Each 3x3 conv widens the receptive field by one pixel on each side: 20 layers give 41x41, radius 20.
RECEPTIVE_FIELD_RADIUS = CONV_LAYERS


class DnCNN(nn.Module):
    """DnCNN that predicts the noise and returns the residual `x - model(x)`; input and output RGB in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(CHANNELS, FEATURES, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        for _ in range(CONV_LAYERS - 2):
            layers += [nn.Conv2d(FEATURES, FEATURES, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(FEATURES, CHANNELS, 3, padding=1, bias=True))
        # KAIR names the stack `model`, so keys read model.0.weight ... model.38.bias.
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Denoise a batch (N, 3, H, W); `valid` (K, 1, H, W) marks the real pixels of the first K, padded, items."""
        if valid is None:
            return x - self.model(x)
        # Zeroing every activation outside the real pixels makes each conv see zeros there, exactly what its
        # own zero padding shows it at a true image border, so padded tiles match whole-frame inference.
        padded = valid.shape[0]
        features = x.clone()
        features[:padded] *= valid
        for layer in self.model:
            features = layer(features)
            if isinstance(layer, nn.ReLU):
                features[:padded] *= valid.to(features.dtype)
        return x - features
