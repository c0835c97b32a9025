"""MODNet's supervised objectives (semantic, detail, fusion), as in the spec.

All tensors are ``B x 1 x H x W`` except ``image`` (``B x 3 x H x W``, the
normalised network input) and ``pred_semantic`` (1/16 resolution).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def gaussian_kernel3(sigma: float = 0.8) -> torch.Tensor:
    """The fixed 3x3 Gaussian used to soften the 1/16 semantic target."""
    coords = torch.tensor([-1.0, 0.0, 1.0])
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum())[None, None]


def gaussian_blur3(x: torch.Tensor, sigma: float = 0.8) -> torch.Tensor:
    """3x3 Gaussian with reflect padding, channel by channel."""
    kernel = gaussian_kernel3(sigma).to(x.device, x.dtype).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])


def semantic_target(matte: torch.Tensor) -> torch.Tensor:
    """Ground truth for the semantic head: x1/16 bilinear, then the 3x3 Gaussian."""
    small = F.interpolate(matte, scale_factor=1 / 16, mode="bilinear", align_corners=False)
    return gaussian_blur3(small)


@dataclass(frozen=True)
class LossWeights:
    semantic: float = 10.0
    detail: float = 10.0
    matte: float = 1.0


def modnet_losses(
    pred_semantic: torch.Tensor,
    pred_detail: torch.Tensor,
    pred_matte: torch.Tensor,
    gt_matte: torch.Tensor,
    trimap: torch.Tensor,
    image: torch.Tensor,
    weights: LossWeights = LossWeights(),
) -> dict[str, torch.Tensor]:
    """The three weighted losses and their sum (key "total").

    Known trimap pixels (0 or 1) replace both prediction and target in the
    detail loss and the 4x boundary terms of the matte loss, so those terms only
    see the unknown band; means are over all pixels, as the authors computed them.
    """
    known = trimap != 0.5
    semantic = F.mse_loss(pred_semantic, semantic_target(gt_matte))
    detail = F.l1_loss(torch.where(known, trimap, pred_detail), torch.where(known, trimap, gt_matte))
    band_matte = torch.where(known, trimap, pred_matte)
    l1 = F.l1_loss(pred_matte, gt_matte) + 4.0 * F.l1_loss(band_matte, gt_matte)
    comp = F.l1_loss(image * pred_matte, image * gt_matte) + 4.0 * F.l1_loss(image * band_matte, image * gt_matte)
    out = {
        "semantic": weights.semantic * semantic,
        "detail": weights.detail * detail,
        "matte": weights.matte * (l1 + comp),
    }
    out["total"] = out["semantic"] + out["detail"] + out["matte"]
    return out
