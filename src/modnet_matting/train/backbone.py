"""MobileNetV2 backbone: person-segmentation pretraining and backbone checkpoints.

The authors started MODNet from a MobileNetV2 trained for human segmentation
(``mobilenetv2_human_seg.ckpt``, keys ``features.*``); ImageNet weights cannot be
downloaded here. ``SegmentationNet`` trains the same backbone on person masks with
a light head on the 1/32 and 1/4 features (BCE + Dice); ``save_backbone`` writes
the backbone alone, and ``load_backbone`` reads it (or the authors' file, or the
backbone of any MODNet checkpoint) into a network before supervised training.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..io import atomic_write
from ..model import MobileNetV2Backbone
from ..weights import CheckpointError, read_checkpoint

#: Key prefixes in front of ``features.`` that name the backbone in known checkpoint layouts.
BACKBONE_PREFIXES = ("", "model.", "backbone.model.", "lr_branch.backbone.model.")
BACKBONE_KIND = "mobilenetv2-backbone"


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SegmentationHead(nn.Module):
    """1/32 context upsampled onto 1/4 detail, then one logit per pixel at 1/4."""

    def __init__(self, enc4x: int = 24, enc32x: int = 1280, width: int = 64) -> None:
        super().__init__()
        self.context = _conv_bn_relu(enc32x, width, 1)
        self.fuse = _conv_bn_relu(width + enc4x, width // 2, 3)
        self.logit = nn.Conv2d(width // 2, 1, 1)

    def forward(self, enc4x: torch.Tensor, enc32x: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(self.context(enc32x), size=enc4x.shape[-2:], mode="bilinear", align_corners=False)
        return self.logit(self.fuse(torch.cat([context, enc4x], 1)))


class SegmentationNet(nn.Module):
    """MODNet's backbone with a segmentation head; training returns logits, ``forward_matte`` probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = MobileNetV2Backbone()
        self.head = SegmentationHead(self.backbone.enc_channels[1], self.backbone.enc_channels[4])

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        _, enc4x, enc32x = self.backbone(img)
        return F.interpolate(self.head(enc4x, enc32x), size=img.shape[-2:], mode="bilinear", align_corners=False)

    def forward_matte(self, img: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(img))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.logits(img) if self.training else self.forward_matte(img)


def segmentation_losses(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """BCE (soft targets allowed) plus soft Dice per sample; key "total" is their sum."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    dice = 1 - ((2 * inter + 1) / (prob.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)).mean()
    return {"bce": bce, "dice": dice, "total": bce + dice}


def backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a checkpoint in any known layout (``module.`` stripped)."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    for prefix in BACKBONE_PREFIXES:
        found = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix + "features.")}
        if found:
            return found
    raise CheckpointError("no MobileNetV2 backbone in this checkpoint (expected keys like features.0.0.weight, "
                          "model.features.*, or a MODNet's backbone.model.features.*)")


def load_backbone(backbone: MobileNetV2Backbone, path: str | os.PathLike) -> int:
    """Load a backbone checkpoint (weights only, no pickled code); returns the number of tensors set.

    Every backbone tensor must be present with the right shape; a classifier or
    other heads in the file are ignored.
    """
    state, _ = read_checkpoint(path)
    features = backbone_state(state)
    expected = backbone.model.state_dict()
    missing = [k for k in expected if k not in features and not k.endswith("num_batches_tracked")]
    wrong = [k for k in expected if k in features and features[k].shape != expected[k].shape]
    if missing or wrong:
        detail = f"{len(missing)} missing e.g. {missing[:2]}" if missing else f"shape mismatch at {wrong[:2]}"
        raise CheckpointError(f"{path}: backbone does not fit MobileNetV2 ({detail})")
    merged = {k: features.get(k, v).to(v.dtype) for k, v in expected.items()}
    backbone.model.load_state_dict(merged, strict=True)
    return len(merged)


def save_backbone(backbone: MobileNetV2Backbone, path: str | os.PathLike) -> Path:
    """The backbone alone as safetensors (fp32, keys ``features.*``), written atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in backbone.model.state_dict().items()}
    return atomic_write(path, save(tensors, metadata={"format": "pt", "kind": BACKBONE_KIND}))
