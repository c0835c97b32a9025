"""Inference: weights in, a ``Predictor`` out (``load_model``), on the fastest runtime that fits.

The path is the same for every kind of weights (docs/architecture.md):
``sources.open_source`` says what the weights are (our network, an ONNX file, an
OpenVINO IR, a TFLite file), ``auto.select_backend`` builds the backend named or chooses
one (``backends/``: PyTorch, ONNX Runtime, OpenVINO, LiteRT), and ``predictor.Predictor``
prepares images by ``preprocess`` and resizes the mattes back.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .preprocess import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from .predictor import Predictor

#: Where each public name lives. Names are imported on first use (PEP 562), so a photo matted on a
#: remembered OpenVINO path (``warm``) never imports PyTorch, which is most of a cold process's start.
_EXPORTS = {
    "auto": ("ACCURACY_BOUND", "BACKENDS", "PRECISIONS", "choose_backend", "make_backend", "select_backend"),
    "backends": ("Backend",),
    "backends.onnx": ("ONNXRUNTIME_HALF_NORM", "OnnxBackend", "onnx_providers"),
    "backends.openvino": ("IR_CONFIG_PATH", "OPENVINO_HALF_NORM", "OpenVinoBackend", "int8_cache_path",
                          "int8_rest_precision", "read_ir_config"),
    "backends.torch": ("TORCH_HALF_NORM", "TorchBackend"),
    "hardware": ("cpu_bf16_native", "openvino_available", "openvino_bf16_supported", "pick_device"),
    "predictor": ("Predictor",),
    "preprocess": ("DEFAULT_MAX_PIXELS", "network_input", "network_size", "normalise", "resize"),
    "sources": ("Source", "open_source"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "load_model"])


_SUBMODULES = ("auto", "backends", "hardware", "int8", "predictor", "preprocess", "refine", "sources", "warm")


def __getattr__(name: str) -> object:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str | None = "auto",
    precision: str = "auto",
    backend: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threads: int | None = None,
    refine: bool = True,
) -> Predictor:
    """A predictor for registry weights (by name) or a weights file (by path).

    ``backend``/``precision`` "auto" (the defaults) pick the fastest path on this
    machine that stays within ``ACCURACY_BOUND`` of the fp32 matte (see
    ``choose_backend``); name them to force one ("torch"/"fp32" is the authors' way).
    An ``.onnx`` path (ours from ``modnet export``, or any graph with the same
    input/output) runs on ONNX Runtime or OpenVINO; an OpenVINO IR (``.xml``,
    e.g. the int8 one from ``modnet export --format openvino-int8``) on OpenVINO; a
    ``.tflite`` (``modnet export --format tflite``) on LiteRT, at its size and precision.
    ``refine``: enlarge mattes along the photo's edges (on by default; see ``Predictor``).
    """
    from .predictor import Predictor
    from .warm import recall, remember

    warm = recall(name_or_path, backend, precision, device, threads)
    if warm is not None:
        return Predictor(warm[0], warm[1], max_pixels=max_pixels, refine=refine)
    from .auto import select_backend
    from .sources import open_source

    source = open_source(name_or_path)
    with source.file_errors():
        chosen = select_backend(source, backend, device, precision, threads)
    if source.kind == "network":
        remember(name_or_path, backend, precision, device, chosen, source.config)
    return Predictor(chosen, source.config, max_pixels=max_pixels, refine=refine)
