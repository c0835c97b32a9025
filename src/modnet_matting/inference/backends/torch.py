"""Eager PyTorch (the authors' way) and ``torch.compile``."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import numpy as np
import torch

from ..hardware import pick_device

#: Graph form of IBNorm's instance-norm half after folding (``model.fuse.HALF_NORM_MODES``),
#: the fastest measured for PyTorch (docs/performance.md).
TORCH_HALF_NORM = "where"

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend:
    """Eager PyTorch; fp16/bf16 through autocast, channels_last memory layout.

    ``fuse`` runs a BatchNorm-folded copy (``model.fuse``; a string picks the
    IBNorm remainder's form, default ``TORCH_HALF_NORM``); ``compile`` wraps the
    network in ``torch.compile`` (first call per input shape compiles: seconds);
    ``cuda_graphs`` (CUDA with ``compile`` only) uses inductor's "reduce-overhead"
    mode, which replays CUDA graphs so launch overhead vanishes at batch 1.
    """

    name = "torch"

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | None = "auto",
        precision: str = "fp32",
        *,
        fuse: bool | str = False,
        compile: bool = False,  # noqa: A002 - the torch name users know
        cuda_graphs: bool = False,
    ) -> None:
        if precision not in DTYPES:
            raise ValueError(f"precision must be one of {', '.join(DTYPES)}, not {precision!r}")
        self.device = pick_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            raise ValueError("fp16 is for GPUs; on the CPU use bf16 or fp32")
        if cuda_graphs and (self.device.type != "cuda" or not compile):
            raise ValueError("CUDA graphs need a CUDA device and compile=True")
        self.precision = precision
        if fuse:
            from ...model.fuse import fuse_modnet

            model = fuse_modnet(model, fuse if isinstance(fuse, str) else TORCH_HALF_NORM)
        elif compile:
            model = copy.deepcopy(model)  # the compiled forward is set on the module: keep the caller's eager
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        if compile:
            mode = "reduce-overhead" if cuda_graphs else None
            # on the instance, so code that calls ``backend.model.forward_matte`` (CUDA-event timing) gets it too
            self.model.forward_matte = torch.compile(self.model.forward_matte, mode=mode)  # type: ignore[method-assign]
            self.name = "compile"
        self._forward: Callable[[torch.Tensor], torch.Tensor] = self.model.forward_matte

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        with self._autocast():
            matte = self._forward(x)
        return matte.float().cpu().numpy()
