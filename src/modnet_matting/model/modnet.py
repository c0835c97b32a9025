"""MODNet (v1/v2 design, SE block in the semantic branch), as its authors released it.

Module and attribute names follow the released checkpoints so that their state
dicts load strictly (see ``weights.load_state_dict``). One deliberate difference:
the authors' low-resolution branch holds a second reference to the backbone, which
duplicates every backbone tensor in their files. Here the backbone runs once in
``MODNet`` and the branches receive its features, so our own files store it once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mobilenetv2 import ENCODER_CHANNELS, MobileNetV2Backbone

HR_CHANNELS = 32


def _resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The one resize the network uses: bilinear, align_corners=False, no antialias."""
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


class IBNorm(nn.Module):
    """Batch norm on the first half of the channels, instance norm on the rest."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bnorm_channels = channels // 2
        self.bnorm = nn.BatchNorm2d(self.bnorm_channels, affine=True)
        self.inorm = nn.InstanceNorm2d(channels - self.bnorm_channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = self.bnorm_channels
        return torch.cat([self.bnorm(x[:, :split].contiguous()), self.inorm(x[:, split:].contiguous())], 1)


class Conv2dIBNormRelu(nn.Module):
    """Conv (with bias) -> optional IBNorm -> optional ReLU, held in ``layers``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        with_ibn: bool = True,
        with_relu: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=True)]
        if with_ibn:
            layers.append(IBNorm(out_channels))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel attention, reduction 4, no biases."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.fc(self.pool(x).flatten(1))
        return x * weights[:, :, None, None]


class LRBranch(nn.Module):
    """Semantic branch: 1/32 features -> 1/8 semantic features (and a 1/16 estimate)."""

    def __init__(self, enc_channels: tuple[int, ...] = ENCODER_CHANNELS) -> None:
        super().__init__()
        self.se_block = SEBlock(enc_channels[4], reduction=4)
        self.conv_lr16x = Conv2dIBNormRelu(enc_channels[4], enc_channels[3], 5, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc_channels[3], enc_channels[2], 5, padding=2)
        self.conv_lr = Conv2dIBNormRelu(enc_channels[2], 1, 3, stride=2, padding=1, with_ibn=False, with_relu=False)

    def features(self, enc32x: torch.Tensor) -> torch.Tensor:
        lr16x = self.conv_lr16x(_resize(self.se_block(enc32x), 2))
        return self.conv_lr8x(_resize(lr16x, 2))

    def semantic(self, lr8x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv_lr(lr8x))


class HRBranch(nn.Module):
    """Detail branch: image + shallow encoder features -> 1/2 detail features."""

    def __init__(self, hr: int = HR_CHANNELS, enc_channels: tuple[int, ...] = ENCODER_CHANNELS) -> None:
        super().__init__()
        self.tohr_enc2x = Conv2dIBNormRelu(enc_channels[0], hr, 1)
        self.conv_enc2x = Conv2dIBNormRelu(hr + 3, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = Conv2dIBNormRelu(enc_channels[1], hr, 1)
        self.conv_enc4x = Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1)
        self.conv_hr4x = nn.Sequential(
            Conv2dIBNormRelu(3 * hr + 3, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
        )
        self.conv_hr2x = nn.Sequential(
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, padding=1),
        )
        self.conv_hr = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, 1, 1, with_ibn=False, with_relu=False),
        )

    def features(
        self, img: torch.Tensor, enc2x: torch.Tensor, enc4x: torch.Tensor, lr8x: torch.Tensor
    ) -> torch.Tensor:
        img2x = _resize(img, 0.5)
        img4x = _resize(img, 0.25)
        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat([img2x, enc2x], 1))
        hr4x = self.conv_enc4x(torch.cat([hr4x, self.tohr_enc4x(enc4x)], 1))
        hr4x = self.conv_hr4x(torch.cat([hr4x, _resize(lr8x, 2), img4x], 1))
        return self.conv_hr2x(torch.cat([_resize(hr4x, 2), enc2x], 1))

    def detail(self, img: torch.Tensor, hr2x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv_hr(torch.cat([_resize(hr2x, 2), img], 1)))


class FusionBranch(nn.Module):
    """Fuses semantic and detail features into the full-resolution alpha matte."""

    def __init__(self, hr: int = HR_CHANNELS, enc_channels: tuple[int, ...] = ENCODER_CHANNELS) -> None:
        super().__init__()
        self.conv_lr4x = Conv2dIBNormRelu(enc_channels[2], hr, 5, padding=2)
        self.conv_f2x = Conv2dIBNormRelu(2 * hr, hr, 3, padding=1)
        self.conv_f = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, hr // 2, 3, padding=1),
            Conv2dIBNormRelu(hr // 2, 1, 1, with_ibn=False, with_relu=False),
        )

    def forward(self, img: torch.Tensor, lr8x: torch.Tensor, hr2x: torch.Tensor) -> torch.Tensor:
        lr4x = self.conv_lr4x(_resize(lr8x, 2))
        f2x = self.conv_f2x(torch.cat([_resize(lr4x, 2), hr2x], 1))
        return torch.sigmoid(self.conv_f(torch.cat([_resize(f2x, 2), img], 1)))


class MODNet(nn.Module):
    """Trimap-free portrait matting network.

    Input: RGB in [-1, 1], ``[B, 3, H, W]`` with H and W multiples of 32.
    ``forward`` returns ``(semantic, detail, matte)`` in training mode (what the
    losses need) and the matte alone in eval mode. Exporters call
    ``forward_matte`` directly, which has no mode switch at all.
    """

    def __init__(self, in_channels: int = 3, hr_channels: int = HR_CHANNELS) -> None:
        super().__init__()
        self.backbone = MobileNetV2Backbone(in_channels)
        self.lr_branch = LRBranch(self.backbone.enc_channels)
        self.hr_branch = HRBranch(hr_channels, self.backbone.enc_channels)
        self.f_branch = FusionBranch(hr_channels, self.backbone.enc_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init: Kaiming-uniform convs with zero bias, unit/zero norms."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=0, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_train(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All three predictions: semantic (1/16), detail (full) and matte (full)."""
        enc2x, enc4x, enc32x = self.backbone(img)
        lr8x = self.lr_branch.features(enc32x)
        hr2x = self.hr_branch.features(img, enc2x, enc4x, lr8x)
        semantic = self.lr_branch.semantic(lr8x)
        detail = self.hr_branch.detail(img, hr2x)
        return semantic, detail, self.f_branch(img, lr8x, hr2x)

    def forward_matte(self, img: torch.Tensor) -> torch.Tensor:
        """The matte only; skips the semantic and detail heads (inference path)."""
        enc2x, enc4x, enc32x = self.backbone(img)
        lr8x = self.lr_branch.features(enc32x)
        hr2x = self.hr_branch.features(img, enc2x, enc4x, lr8x)
        return self.f_branch(img, lr8x, hr2x)

    def forward(self, img: torch.Tensor):  # noqa: ANN201 - tuple in training, tensor in eval
        if self.training:
            return self.forward_train(img)
        return self.forward_matte(img)


class MatteOnly(nn.Module):
    """Wrapper whose ``forward`` is the inference path, for ONNX/TorchScript export."""

    def __init__(self, net: MODNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.net.forward_matte(img)
