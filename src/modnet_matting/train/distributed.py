"""torch.distributed helpers: process-group setup from torchrun's environment, and sync BN on CPUs.

``torch.nn.SyncBatchNorm`` only runs on accelerators, so CPU runs (gloo) use
``DistributedBatchNorm2d``: batch statistics are summed over all ranks with a
differentiable all-reduce, which makes N processes with B samples each compute
exactly what one process computes with N x B samples.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import nn


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: str = "auto") -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); False when single-process.

    NCCL when the run will use CUDA, gloo on the CPU. Each rank then uses the
    GPU ``LOCAL_RANK``.
    """
    if world_size_from_env() <= 1 or dist.is_initialized():
        return dist.is_initialized()
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # Rank 0 may spend a long time building dataset caches while the others wait at a barrier.
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(hours=3))
    return True


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank when ``flag`` is true on at least one (stop decisions must agree)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is again the sum over ranks."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - autograd signature
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(tensor)


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with statistics over the whole distributed batch; any device, any backend.

    Two passes (mean, then squared deviations) keep the variance as accurate as
    the single-process kernel's. In eval mode, or without a process group, it is
    plain BatchNorm2d; the state dict is the same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        count = sum_over_ranks(torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device))
        mean = sum_over_ranks(x.sum(dims)) / count
        centred = x - mean[None, :, None, None]
        var = sum_over_ranks(centred.pow(2).sum(dims)) / count
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), count.item())
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            return centred * (scale * self.weight)[None, :, None, None] + self.bias[None, :, None, None]
        return centred * scale[None, :, None, None]

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = var * (count / max(1.0, count - 1))
        self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype), alpha=momentum)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Sync BN for multi-process training: torch's SyncBatchNorm on GPUs, ours elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _replace_bn(module)


def _replace_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, DistributedBatchNorm2d):
        bn = DistributedBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        bn.load_state_dict(module.state_dict())
        bn.train(module.training)
        return bn
    for name, child in module.named_children():
        module.add_module(name, _replace_bn(child))
    return module
