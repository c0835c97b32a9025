"""Inference: weights in, a ``Predictor`` out (``load_model``), on the fastest runtime that fits.

The path is the same for every kind of weights (docs/architecture.md):
``sources.open_source`` says what the weights are (our network, an ONNX file, an
OpenVINO IR, a TFLite file), ``auto.select_backend`` builds the backend named or chooses
one (``backends/``: PyTorch, ONNX Runtime, OpenVINO, LiteRT), and ``predictor.Predictor``
prepares images by ``preprocess`` and resizes the mattes back.
"""

from __future__ import annotations

import os

from .auto import ACCURACY_BOUND, BACKENDS, PRECISIONS, choose_backend, make_backend, select_backend
from .backends import Backend
from .backends.onnx import ONNXRUNTIME_HALF_NORM, OnnxBackend, onnx_providers
from .backends.openvino import (
    IR_CONFIG_PATH,
    OPENVINO_HALF_NORM,
    OpenVinoBackend,
    int8_cache_path,
    int8_rest_precision,
    read_ir_config,
)
from .backends.torch import TORCH_HALF_NORM, TorchBackend
from .hardware import cpu_bf16_native, openvino_available, openvino_bf16_supported, pick_device
from .predictor import Predictor
from .preprocess import DEFAULT_MAX_PIXELS, network_input, network_size, normalise, resize
from .sources import Source, open_source

__all__ = [
    "ACCURACY_BOUND", "BACKENDS", "DEFAULT_MAX_PIXELS", "IR_CONFIG_PATH", "ONNXRUNTIME_HALF_NORM",
    "OPENVINO_HALF_NORM", "PRECISIONS", "TORCH_HALF_NORM", "Backend", "OnnxBackend", "OpenVinoBackend",
    "Predictor", "Source", "TorchBackend", "choose_backend", "cpu_bf16_native", "int8_cache_path",
    "int8_rest_precision", "load_model", "make_backend", "network_input", "network_size", "normalise",
    "onnx_providers", "open_source", "openvino_available", "openvino_bf16_supported", "pick_device",
    "read_ir_config", "resize", "select_backend",
]


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
    source = open_source(name_or_path)
    with source.file_errors():
        chosen = select_backend(source, backend, device, precision, threads)
    return Predictor(chosen, source.config, max_pixels=max_pixels, refine=refine)
