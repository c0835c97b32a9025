"""Model size, MACs and latency per backend, precision, batch size and resolution.

Latency protocol: ``warmup`` untimed calls, then ``repeat`` timed calls of one
batch each; the median is the headline, min and mean are kept too. On CUDA the
PyTorch backends are timed on device tensors with CUDA events (the network
alone, as papers report it); everything else is timed with ``perf_counter``
around the backend's ``run`` (numpy in, numpy out: what a user's call costs).
Sizes that are not multiples of 32 are rounded up, as the network requires.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..inference import Backend, TorchBackend, make_backend
from ..weights import WeightsConfig

SIZE_DIVISOR = 32


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the spec's 6,487,075 for MODNet)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, height: int, width: int, batch: int = 1) -> int:
    """Multiply-accumulates of the inference path, counted with hooks on Conv2d and Linear.

    A convolution costs (output elements) x (input channels per group) x kernel
    area; a linear layer (output elements) x (input features). Norms, activations,
    resizes and bias additions are not counted (the usual convention; the spec's
    15.47 GMACs at 512x512).
    """
    total = 0

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            param = next(model.parameters())
            model.forward_matte(torch.zeros(batch, 3, height, width, device=param.device, dtype=param.dtype))
    finally:
        for handle in handles:
            handle.remove()
    return total


def parse_size(text: str) -> tuple[int, int]:
    """"512x512" or "1080x1920" (height x width) -> (height, width)."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must look like 512x512 (height x width), not {text!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, not {text!r}")
    return height, width


def network_shape(height: int, width: int) -> tuple[int, int]:
    """Round each side up to a multiple of 32 (1080 -> 1088)."""
    return (-(-height // SIZE_DIVISOR) * SIZE_DIVISOR, -(-width // SIZE_DIVISOR) * SIZE_DIVISOR)


@dataclass
class Timing:
    backend: str
    precision: str
    batch: int
    requested: str
    height: int
    width: int
    median_ms: float | None = None
    min_ms: float | None = None
    mean_ms: float | None = None
    images_per_s: float | None = None
    timer: str = ""
    error: str | None = None
    runs_as: str = ""  # what "auto" resolved to, e.g. "openvino bf16"


def build_backend(name: str, model: nn.Module, device: str, precision: str, threads: int | None = None,
                  config: WeightsConfig | None = None) -> Backend:
    """The named backend, built exactly as the predictor builds it (``inference.make_backend``).

    ``config`` is the weights' own: "auto" reads the accuracy recorded in its card.
    """
    return make_backend(model, name, device, precision, threads=threads, config=config)


def _timed_call(backend: Backend, batch: np.ndarray) -> tuple[Callable[[], float], str]:
    """A function that runs one batch and returns its milliseconds, and the timer's name."""
    device = getattr(backend, "device", None)
    if isinstance(backend, TorchBackend) and device is not None and device.type == "cuda":
        x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def cuda_call() -> float:
            with torch.inference_mode(), backend._autocast():
                start.record()
                backend.model.forward_matte(x)
                end.record()
            torch.cuda.synchronize(device)
            return float(start.elapsed_time(end))

        return cuda_call, "cuda-events"

    def host_call() -> float:
        begin = time.perf_counter()
        backend.run(batch)
        return (time.perf_counter() - begin) * 1000.0

    return host_call, "perf_counter"


def measure(
    backend: Backend, height: int, width: int, batch: int = 1, repeat: int = 7, warmup: int = 3, seed: int = 0
) -> tuple[list[float], str]:
    """Per-call milliseconds of ``repeat`` timed calls after ``warmup`` untimed ones."""
    data = np.random.default_rng(seed).uniform(-1, 1, (batch, 3, height, width)).astype(np.float32)
    call, timer = _timed_call(backend, data)
    for _ in range(warmup):
        call()
    return [call() for _ in range(repeat)], timer


def machine_info(device: str, threads: int | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "requested_threads": threads,
        "torch": torch.__version__,
        "device": device,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    with contextlib.suppress(ImportError):
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    with contextlib.suppress(ImportError):
        import openvino

        info["openvino"] = openvino.get_version()
    return info


def run_benchmark(
    model: nn.Module,
    backends: Sequence[str] = ("torch",),
    precisions: Sequence[str] = ("fp32",),
    sizes: Sequence[tuple[int, int]] = ((512, 512),),
    batches: Sequence[int] = (1,),
    repeat: int = 7,
    warmup: int = 3,
    device: str = "auto",
    threads: int | None = None,
    weights: str = "random initialisation",
    progress: Callable[[Timing], None] | None = None,
    config: WeightsConfig | None = None,
    fixed_size: dict[str, Callable[[str, int, int], Backend]] | None = None,
) -> dict[str, Any]:
    """Every combination of backend x precision x size x batch; a failing one records its error.

    ``fixed_size`` builds the backends whose files have one input size (LiteRT's ``.tflite``):
    name -> ``build(precision, height, width)``, called once per size.
    """
    fixed_size = fixed_size or {}
    if threads:
        torch.set_num_threads(threads)
    model = model.eval()
    report: dict[str, Any] = {
        "machine": machine_info(device, threads),
        "model": {"weights": weights, "parameters": count_parameters(model), "macs": {}},
        "settings": {"repeat": repeat, "warmup": warmup, "statistic": "median"},
        "results": [],
    }
    for height, width in sizes:
        h, w = network_shape(height, width)
        report["model"]["macs"][f"{h}x{w}"] = count_macs(model, h, w)
    for name in backends:
        for precision in precisions:
            if name not in fixed_size:
                backend, build_error = _build(build_backend, name, model, device, precision, threads, config)
            for height, width in sizes:
                h, w = network_shape(height, width)
                if name in fixed_size:
                    backend, build_error = _build(fixed_size[name], precision, h, w)
                for batch in batches:
                    timing = Timing(name, precision, batch, f"{height}x{width}", h, w)
                    if backend is not None:
                        timing.runs_as = f"{backend.name} {getattr(backend, 'precision', '')}".strip()
                    if backend is None:
                        timing.error = build_error
                    else:
                        _fill(timing, backend, repeat, warmup)
                    report["results"].append(asdict(timing))
                    if progress is not None:
                        progress(timing)
    return report


def _build(make: Callable[..., Backend], *args: Any) -> tuple[Backend | None, str]:
    """``make(*args)``, or None and why not: a backend/precision this machine lacks is recorded, not fatal."""
    try:
        return make(*args), ""
    except Exception as exc:  # noqa: BLE001 - every runtime has its own exception types
        return None, f"{type(exc).__name__}: {exc}"


def _fill(timing: Timing, backend: Backend, repeat: int, warmup: int) -> None:
    try:
        times, timing.timer = measure(backend, timing.height, timing.width, timing.batch, repeat, warmup)
    except Exception as exc:  # e.g. out of memory at a large batch: keep the other rows
        timing.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return
    timing.median_ms = statistics.median(times)
    timing.min_ms = min(times)
    timing.mean_ms = statistics.fmean(times)
    timing.images_per_s = timing.batch * 1000.0 / timing.median_ms if timing.median_ms > 0 else None


def format_report(report: dict[str, Any]) -> str:
    """Plain-text table with the machine and protocol in the header."""
    machine, model, settings = report["machine"], report["model"], report["settings"]
    macs = ", ".join(f"{size}: {value / 1e9:.2f} G" for size, value in model["macs"].items())
    lines = [
        f"# machine: {machine['processor']}, {machine['cpu_count']} CPUs, torch threads {machine['torch_threads']}, "
        f"device {machine['device']}" + (f", GPU {machine['gpu']}" if machine.get("gpu") else ""),
        f"# model: {model['parameters']:,} parameters; MACs {macs}; weights: {model['weights']}",
        f"# latency: {settings['statistic']} of {settings['repeat']} calls after {settings['warmup']} warm-up calls",
    ]
    headers = ["backend", "precision", "runs as", "size", "batch", "median ms", "min ms", "img/s", "timer"]
    rows = []
    for r in report["results"]:
        size = f"{r['height']}x{r['width']}"
        head = [r["backend"], r["precision"], r.get("runs_as") or "-", size, str(r["batch"])]
        if r["error"]:
            rows.append([*head, "-", "-", "-", r["error"][:60]])
        else:
            rows.append([*head, f"{r['median_ms']:.2f}", f"{r['min_ms']:.2f}", f"{r['images_per_s']:.1f}",
                         r["timer"]])
    widths = [max(len(row[i]) for row in [headers] + rows) for i in range(len(headers))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
