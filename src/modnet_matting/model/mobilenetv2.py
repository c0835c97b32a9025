"""MobileNetV2 encoder with the module names of the MODNet release.

The authors wrap a MobileNetV2 (width 1.0, ReLU6) in ``backbone.model.features``;
the indices of that ``nn.Sequential`` are part of the checkpoint contract, so the
layer list below is laid out so that ``features.N`` lines up with their files.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s) per stage.
_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

#: Channels of the five taps (1/2, 1/4, 1/8, 1/16, 1/32) in the authors' order.
ENCODER_CHANNELS: tuple[int, int, int, int, int] = (16, 24, 32, 96, 1280)


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    """MobileNetV2 block; ``conv`` indices match the released checkpoints."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += _conv_bn_relu6(cin, hidden, 1, 1)
        layers += _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """The feature extractor only (no classifier): ``features.0`` .. ``features.18``."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(*_conv_bn_relu6(in_channels, 32, 3, 2))]
        cin = 32
        for expansion, cout, repeats, stride in _STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        blocks.append(nn.Sequential(*_conv_bn_relu6(cin, 1280, 1, 1)))
        self.features = nn.Sequential(*blocks)


class MobileNetV2Backbone(nn.Module):
    """Runs the encoder and returns the taps MODNet uses: 1/2, 1/4 and 1/32."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.model = MobileNetV2(in_channels)
        self.enc_channels = ENCODER_CHANNELS

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.model.features
        x = features[1](features[0](x))
        enc2x = x
        x = features[3](features[2](x))
        enc4x = x
        for index in range(4, 19):
            x = features[index](x)
        return enc2x, enc4x, x
