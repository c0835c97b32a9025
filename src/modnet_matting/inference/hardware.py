"""What this machine offers: devices, bf16 in hardware, the CPU's name, OpenVINO's presence.

Probes only, no backends: the automatic choice (``auto``) and the backends ask here.
"""

from __future__ import annotations

import contextlib
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the device probe only: the OpenVINO warm start runs without it
    import torch


def pick_device(device: str | None = "auto") -> torch.device:
    """"auto" prefers CUDA, then Apple MPS, then the CPU."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:  # torch lists every device type it knows, in one long line
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but is not available on this machine; use --device cpu or auto")
    if chosen.type == "mps" and not has_mps:
        raise ValueError("Apple MPS was requested but is not available on this machine; use --device cpu or auto")
    return chosen


def cpu_only(backend: str, device: str | None) -> None:
    """Refuse a non-CPU device for a backend that runs on the CPU only."""
    if device not in (None, "auto", "cpu"):
        raise ValueError(f"the {backend} backend runs on the CPU here, not on {device!r}")


def openvino_available() -> bool:
    """Whether the ``openvino`` package imports (the ``openvino`` extra)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def need_openvino() -> None:
    """A one-line error naming the extra when OpenVINO is missing."""
    if not openvino_available():
        raise ValueError("the openvino backend needs the openvino package: pip install 'modnet-matting[openvino]'")


def openvino_bf16_supported() -> bool:
    """Whether OpenVINO can run bf16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    if not openvino_available():
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def openvino_version() -> str:
    import openvino as ov

    return ov.get_version().split("-")[0]


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX).

    Only there does bf16 autocast in PyTorch pay off (1.8x over fp32 on the project's
    CPU); elsewhere oneDNN emulates it, so ``auto`` does not try it.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: ask OpenVINO, which knows the CPU's capabilities
        return openvino_bf16_supported()
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def cpu_name() -> str:
    """The CPU model (bf16/int8 numerics depend on the instruction set)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
