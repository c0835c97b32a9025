"""The one place that chooses a backend: by name, or the fastest that runs here and is accurate enough.

``select_backend`` takes a ``Source`` and the user's backend/precision. Named ones
are built as asked (``build``); "auto" tries the candidates for the device, fastest
first, and accepts a lossy one (bf16, fp16, int8) only if its matte is within
``ACCURACY_BOUND`` of fp32: by the figure recorded with the weights or the int8 IR
where there is one, else measured once on the bundled photo and remembered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..io import atomic_write, read_json_object
from ..weights import WeightsConfig, cache_dir
from .backends.litert import LiteRTBackend
from .backends.onnx import ONNXRUNTIME_HALF_NORM, OnnxBackend, onnx_providers
from .backends.openvino import (
    ACCURACY_BOUND,
    OPENVINO_HALF_NORM,
    OpenVinoBackend,
    int8_rest_precision,
    read_ir_accuracy,
)
from .backends.torch import TorchBackend
from .hardware import cpu_bf16_native, cpu_name, cpu_only, need_openvino, openvino_version, pick_device
from .preprocess import network_input
from .sources import RUNTIMES, Source

if TYPE_CHECKING:
    from torch import nn

    from .backends import Backend

BACKENDS = ("auto", "torch", "compile", "onnx", "openvino", "litert")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: Short side of the photo the accuracy check runs on (small: the check runs once per weights).
CHECK_SHORT_SIDE = 256

# What "auto" tries on a CPU, fastest first; lossy ones only if measured within ACCURACY_BOUND.
CPU_CANDIDATES: dict[str, list[tuple[str, str]]] = {
    "auto": [("openvino", "int8"), ("openvino", "bf16"), ("openvino", "fp32"), ("torch", "bf16"), ("onnx", "fp32"),
             ("torch", "fp32")],
    "fp32": [("openvino", "fp32"), ("onnx", "fp32"), ("torch", "fp32")],
    "bf16": [("openvino", "bf16"), ("torch", "bf16")],
    "int8": [("openvino", "int8")],
    "fp16": [("torch", "fp16")],
}
LOSSY = {"bf16", "fp16", "int8"}


def select_backend(source: Source, backend: str = "auto", device: str | None = "auto", precision: str = "auto",
                   threads: int | None = None) -> Backend:
    """The backend for ``source``: built as named, or chosen (``choose_backend``) where either is "auto"."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    source.check(backend, precision)
    if backend == "auto" or precision == "auto":
        return choose_backend(source, device, precision, threads, only=None if backend == "auto" else backend)
    return build(source, backend, precision, device, threads, fuse_torch=False)


def make_backend(
    model: nn.Module,
    backend: str = "torch",
    device: str | None = "auto",
    precision: str = "fp32",
    threads: int | None = None,
    config: WeightsConfig | None = None,
) -> Backend:
    """Build the named backend around a loaded network.

    "torch" is the authors' way (eager, unfused). "compile" is ``torch.compile`` on
    the BatchNorm-folded network. "onnx" and "openvino" export the folded network
    once to the cache (keyed by a hash of the weights); "openvino" with precision
    "int8" needs an int8 model calibrated on photos (``modnet export --format
    openvino-int8``). "auto" (or precision "auto") picks the fastest path that
    runs here and, for lossy precisions, stays within ``ACCURACY_BOUND``
    (``choose_backend``).
    """
    return select_backend(Source.network(model, config), backend, device, precision, threads)


def build(source: Source, backend: str, precision: str, device: str | None, threads: int | None,
          fuse_torch: bool) -> Backend:
    """One concrete (backend, precision) pair; ValueError when it cannot run here."""
    if backend in ("torch", "compile"):
        compiled = backend == "compile"
        return TorchBackend(source.torch_model(backend), device, precision, fuse=fuse_torch or compiled,
                            compile=compiled)
    if backend == "onnx":
        if precision != "fp32":
            raise ValueError(f"the onnx backend runs in fp32 only, not {precision}")
        onnx_providers(device)
        return OnnxBackend(source.onnx(ONNXRUNTIME_HALF_NORM), device, threads=threads or 0)
    if backend == "openvino":
        cpu_only(backend, device)
        need_openvino()
        if precision == "int8":
            return OpenVinoBackend(source.int8_ir(), int8_rest_precision(), threads, model=source.ir_model)
        return OpenVinoBackend(source.openvino_input(OPENVINO_HALF_NORM), precision, threads, model=source.ir_model)
    if backend == "litert":  # Source.check has refused it for anything but a .tflite file
        cpu_only(backend, device)
        return LiteRTBackend(source.path, threads)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {backend!r}; choose from: {', '.join(BACKENDS)}")


def choose_backend(
    source: Source | nn.Module,
    device: str | None = "auto",
    precision: str = "auto",
    threads: int | None = None,
    only: str | None = None,
) -> Backend:
    """The fastest backend that runs here (``backend="auto"``).

    On a GPU: eager PyTorch, fp16 on CUDA when precision is "auto" (an ONNX file:
    ONNX Runtime's CUDA provider). On a CPU, in order: OpenVINO int8 (if calibrated
    for these weights), OpenVINO bf16 (CPUs with bf16), OpenVINO fp32, PyTorch bf16
    (folded, CPUs with bf16 in hardware: 183 against ONNX Runtime fp32's 260 ms at
    512x512 on the project's CPU), ONNX Runtime fp32, PyTorch fp32 (folded); only
    those that can run the source. A lossy candidate chosen by precision "auto" must
    first match the fp32 matte within ``ACCURACY_BOUND``: by the mean over held-out
    photos recorded for these weights (``recorded_error``) where there is one, else
    on the bundled photo (measured once per weights and machine, then remembered in
    the cache). A given int8 IR, or a .tflite file, runs at the precision the user chose
    at export and is not checked.
    ``only`` keeps one backend's candidates.
    """
    if not isinstance(source, Source):
        source = Source.network(source)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    chosen = _device_for(source, device)
    if chosen.type != "cpu":
        name, want = _gpu_choice(source, chosen, precision, only)
        return build(source, name, want, str(chosen), threads, fuse_torch=True)
    candidates = _cpu_candidates(source, precision, only)
    errors = []
    for name, prec in candidates:
        try:
            backend = build(source, name, prec, "cpu", threads, fuse_torch=True)
        except (ValueError, ImportError, RuntimeError, OSError) as exc:
            errors.append(f"{name} {prec}: {exc}")
            continue
        if precision == "auto" and prec in LOSSY and not source.quantized and source.kind != "tflite":
            problem = _accuracy_problem(source, backend, name, prec)
            if problem:
                errors.append(f"{name} {prec}: {problem}")
                continue
        return backend
    raise ValueError("no backend can run here: " + "; ".join(errors))


def _device_for(source: Source, device: str | None) -> torch.device:
    """"auto" is the best device for this kind of source: only PyTorch runs on MPS, only ONNX Runtime
    runs a given ONNX file on CUDA (where its build has CUDA), and OpenVINO runs on the CPU."""
    chosen = pick_device(device)
    if device not in (None, "auto") or chosen.type == "cpu" or source.kind == "network":
        return chosen
    if source.kind == "onnx" and chosen.type == "cuda":
        with contextlib.suppress(ImportError):
            if onnx_providers("auto")[0] == "CUDAExecutionProvider":
                return chosen
    return torch.device("cpu")


def _gpu_choice(source: Source, device: torch.device, precision: str, only: str | None) -> tuple[str, str]:
    if source.kind == "network" and only in (None, "torch", "compile"):
        return only or "torch", precision if precision != "auto" else ("fp16" if device.type == "cuda" else "fp32")
    if source.kind == "onnx" and only in (None, "onnx") and precision in ("auto", "fp32"):
        return "onnx", "fp32"
    raise ValueError(f"the {only or 'openvino'} backend runs on the CPU here, not on {device.type}")


def _cpu_candidates(source: Source, precision: str, only: str | None) -> list[tuple[str, str]]:
    if source.kind == "tflite":  # one file, one precision: the user's choice at export
        return [("litert", source.file_precision or "fp32")]
    runs = RUNTIMES[source.kind]
    candidates = [(b, p) for b, p in CPU_CANDIDATES[precision]
                  if b in runs and (only is None or b == only or (only == "compile" and b == "torch"))]
    if not candidates:
        raise ValueError(f"the {only} backend does not run {precision} on a CPU")
    if precision == "auto" and not cpu_bf16_native():  # emulated bf16 is slower than fp32
        candidates = [c for c in candidates if c != ("torch", "bf16")]
    return [("compile" if only == "compile" else b, p) for b, p in candidates]


def _accuracy_problem(source: Source, backend: Backend, name: str, precision: str) -> str | None:
    """Why a lossy candidate is refused (its error over ``ACCURACY_BOUND``, or the check failing), or None."""
    recorded = recorded_error(backend, name, precision, source.config)
    if recorded is not None:
        return f"held-out photos measured {recorded:.4f} > {ACCURACY_BOUND}" if recorded > ACCURACY_BOUND else None
    try:
        error = measured_error(source, backend, name, precision)
    except (RuntimeError, ValueError, OSError) as exc:  # e.g. the runtime cannot compile it here
        return str(exc)
    return f"mean abs difference {error:.4f} > {ACCURACY_BOUND}" if error > ACCURACY_BOUND else None


def recorded_error(backend: Backend, name: str, precision: str, config: WeightsConfig) -> float | None:
    """Mean matte error against fp32 over held-out real photos, where it was measured for these weights.

    An int8 IR carries the figure from its calibration (``int8``); a weights
    file may carry ``card["accuracy"]["<backend> <precision>"]["mad"]`` (written by
    ``benchmarks/fast_accuracy.py --record``). That is the issue's criterion (MAD
    over real photos), so it is preferred to the one-photo check.
    """
    if isinstance(backend, OpenVinoBackend) and backend.quantized:
        accuracy = read_ir_accuracy(backend.model)
        return None if accuracy is None else accuracy.mad
    record = (config.card or {}).get("accuracy", {}).get(f"{name} {precision}")
    try:
        return float(record["mad"]) if record is not None else None
    except (KeyError, TypeError, ValueError):
        return None  # a malformed record: fall back to measuring


def check_input(config: WeightsConfig) -> np.ndarray:
    """The bundled photo at a small network size, normalised: the accuracy check's input."""
    from ..io import read_image

    rgb = read_image(Path(str(resources.files("modnet_matting") / "assets" / "grace_hopper.jpg")))
    small = dataclasses.replace(config.preprocess, reference_size=CHECK_SHORT_SIDE, resize_mode="short_side")
    return network_input(rgb, small)[None]


def measured_error(source: Source, backend: Backend, name: str, precision: str) -> float:
    """Mean |candidate - fp32| matte difference on the check photo; remembered per weights and machine."""
    versions = f"ov{openvino_version()}" if name == "openvino" else f"torch{torch.__version__}"
    key = f"{source.key}:{name}:{precision}:{versions}:{cpu_name()}"
    store = cache_dir() / "auto" / "accuracy.json"
    known = read_json_object(store)
    if key not in known:
        batch = check_input(source.config)
        known[key] = float(np.mean(np.abs(backend.run(batch) - source.reference().run(batch))))
        with contextlib.suppress(OSError):  # a read-only cache only costs a re-check next time
            atomic_write(store, (json.dumps({**read_json_object(store), key: known[key]}, indent=1) + "\n").encode())
    return float(known[key])
