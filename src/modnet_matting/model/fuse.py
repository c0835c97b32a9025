"""An inference-only MODNet with its batch norms folded into the convolutions.

In eval mode a BatchNorm is a per-channel affine map ``y = a * x + b`` with
constants ``a = gamma / sqrt(var + eps)`` and ``b = beta - a * mean``; when it
follows a convolution, scaling the conv's output rows by ``a`` and adding ``b``
to its bias gives the same result with one op fewer. That covers every
BatchNorm in the MobileNetV2 backbone (conv without bias -> BN) and the
batch-norm half of every IBNorm (conv with bias -> IBNorm): IBNorm normalises its
first ``C // 2`` channels with BN, which are exactly the conv's first ``C // 2``
output rows. What is left of IBNorm is instance norm on the other half
(``HalfInstanceNorm``), which depends on the image and cannot be folded.

``fuse_modnet`` returns a fused *copy*: the original stays trainable. The copy
keeps ``forward_matte``/``forward_train`` and the module tree (the folded norms
become ``nn.Identity``), so every backend and exporter takes it unchanged; its
state dict no longer matches the checkpoint format, so never save it as weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .modnet import IBNorm, MODNet


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode affine map of a BatchNorm, in float64 so folding adds no rounding of its own."""
    var = bn.running_var.double()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    return scale, shift


@torch.no_grad()
def fold_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d, channels: int | None = None) -> None:
    """Fold ``bn`` into the first ``channels`` output rows of ``conv`` (all of them by default), in place."""
    count = conv.out_channels if channels is None else channels
    if bn.num_features != count or count > conv.out_channels:
        raise ValueError(f"cannot fold a BatchNorm of {bn.num_features} channels into {count} conv rows")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    scale, shift = bn_scale_shift(bn)
    weight = conv.weight.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    weight[:count] *= scale.view(-1, 1, 1, 1)
    bias[:count] = bias[:count] * scale + shift
    conv.weight.copy_(weight.to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
    else:
        conv.bias.copy_(bias.to(conv.bias.dtype))


#: How ``HalfInstanceNorm`` keeps the batch-norm half: "where" normalises every channel and
#: selects (no split/concat: fastest on OpenVINO), "slice" normalises only the second half
#: and concatenates (less arithmetic: fastest in eager PyTorch and ONNX Runtime). Same result.
HALF_NORM_MODES = ("where", "slice")


class HalfInstanceNorm(nn.Module):
    """IBNorm after folding: identity on the first ``split`` channels, instance norm on the rest.

    Matches ``nn.InstanceNorm2d(affine=False)`` (biased variance, ``eps`` inside
    the square root) on the second half. ``mode`` (``HALF_NORM_MODES``) only
    changes the graph, not the numbers: OpenVINO runs a split as a reference
    (non-vectorised) kernel in bf16, so there the "where" form without split and
    concat is faster; runtimes whose instance norm is slow prefer "slice", which
    normalises half as many channels (docs/performance.md has the measurements).
    """

    def __init__(self, split: int, channels: int, eps: float = 1e-5, mode: str = "where") -> None:
        super().__init__()
        if mode not in HALF_NORM_MODES:
            raise ValueError(f"mode must be one of {', '.join(HALF_NORM_MODES)}, not {mode!r}")
        self.split = split
        self.eps = eps
        self.mode = mode
        self.register_buffer("keep", (torch.arange(channels) < split).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "slice":
            tail = nn.functional.instance_norm(x[:, self.split:].contiguous(), eps=self.eps)
            return torch.cat([x[:, : self.split], tail], 1)
        return torch.where(self.keep, x, nn.functional.instance_norm(x, eps=self.eps))

    def extra_repr(self) -> str:
        return f"split={self.split}, channels={self.keep.shape[1]}, eps={self.eps}, mode={self.mode}"


def _fuse_sequential(seq: nn.Sequential, mode: str) -> int:
    """Fold each ``Conv2d -> BatchNorm2d`` pair of one Sequential; returns how many were folded."""
    folded = 0
    items = list(seq._modules.items())
    for (_, first), (name, second) in zip(items, items[1:]):
        if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
            fold_bn_into_conv(first, second)
            seq._modules[name] = nn.Identity()
            folded += 1
        elif isinstance(first, nn.Conv2d) and isinstance(second, IBNorm):
            fold_bn_into_conv(first, second.bnorm, second.bnorm_channels)
            channels = second.bnorm_channels + second.inorm.num_features
            seq._modules[name] = HalfInstanceNorm(second.bnorm_channels, channels, second.inorm.eps, mode)
            folded += 1
    return folded


def _check_foldable(model: nn.Module) -> None:
    for module in model.modules():
        norm = module if isinstance(module, nn.InstanceNorm2d) else None
        if norm is not None and (norm.affine or norm.track_running_stats):
            raise ValueError("fusing assumes IBNorm's instance norm has no affine part and no running stats")


def fuse_modnet(model: MODNet, half_norm: str = "where") -> MODNet:
    """An eval-only copy of ``model`` with every foldable BatchNorm folded (see the module docstring).

    ``half_norm`` picks the graph form of what is left of IBNorm (``HALF_NORM_MODES``).

    Raises ``ValueError`` if a BatchNorm is left that does not follow a conv
    (the fused copy would otherwise silently differ from the authors' graph).
    """
    fused = copy.deepcopy(model).eval()
    _check_foldable(fused)
    for module in list(fused.modules()):
        if isinstance(module, nn.Sequential):
            _fuse_sequential(module, half_norm)
    left = [name for name, module in fused.named_modules() if isinstance(module, (nn.BatchNorm2d, IBNorm))]
    if left:
        raise ValueError(f"batch norms left unfolded: {', '.join(left[:5])}")
    for parameter in fused.parameters():
        parameter.requires_grad_(False)
    fused.__class__ = FusedMODNet
    return fused


class FusedMODNet(MODNet):
    """The class of ``fuse_modnet``'s copies: a MODNet that refuses training mode."""

    def train(self, mode: bool = True) -> FusedMODNet:
        """Training a fused copy would train the folded constants, not the network: refuse it."""
        if mode:
            raise RuntimeError("a fused MODNet is for inference only; fuse a copy of the trained network instead")
        return super().train(False)


def is_fused(model: nn.Module) -> bool:
    """Whether ``model`` came from ``fuse_modnet``."""
    return isinstance(model, FusedMODNet)
