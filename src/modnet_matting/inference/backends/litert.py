"""LiteRT (TensorFlow Lite) on a ``.tflite`` export: a fixed input size, float or fully int8 tensors.

A ``.tflite`` from ``modnet export --format tflite`` has one input size, chosen at export
(phones want that). The backend takes any batch like the others: each image is resized to
the file's size (stretched: a mobile app feeds its camera frame the same way), run, and
the matte resized back. An int8 file takes int8 pixels; the tensor's own scale and zero
point convert them. The weights config and the file's I/O description are the file's
metadata (``modnet_config``, ``modnet_io``, and for fp16/int8 ``modnet_accuracy``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from ..preprocess import resize

CONFIG_KEY, IO_KEY, ACCURACY_KEY = "modnet_config", "modnet_io", "modnet_accuracy"


def read_tflite_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The named metadata entries of a .tflite file (ours: ``modnet_config``, ``modnet_io``, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    found = {}
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        found[entry.Name().decode()] = bytes(data).decode() if not isinstance(data, int) else ""
    return found


def to_tensor(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float ``x`` as the input tensor wants it: as it is, or quantised with the tensor's scale and zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.ascontiguousarray(x, dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.ascontiguousarray(np.clip(np.round(x / scale + zero), info.min, info.max), dtype)


def from_tensor(y: np.ndarray, detail: dict) -> np.ndarray:
    """An output tensor as float32, dequantised where it is an integer tensor."""
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A ``C x H x W`` float array resized to ``height x width`` by the predictor's own rule (``resize``)."""
    if image.shape[1:] == (height, width):
        return image
    hwc = resize(np.ascontiguousarray(image.transpose(1, 2, 0)), height, width)
    return (hwc[..., None] if hwc.ndim == 2 else hwc).transpose(2, 0, 1)


class LiteRTBackend:
    """LiteRT's interpreter (XNNPACK on the CPU) on a ``.tflite`` file, at the file's fixed size."""

    name = "litert"

    def __init__(self, model_path: str | os.PathLike[str], threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = Path(model_path)
        self.interpreter = Interpreter(model_path=str(self.model_path), num_threads=threads or os.cpu_count() or 1)
        self.interpreter.allocate_tensors()
        self.source = self.interpreter.get_input_details()[0]
        self.target = self.interpreter.get_output_details()[0]
        shape = [int(side) for side in self.source["shape"]]
        if len(shape) != 4 or 3 not in (shape[1], shape[3]):
            raise ValueError(f"{self.model_path} takes a {shape} input, not one RGB image (1x3xHxW or 1xHxWx3)")
        self.channels_last = shape[3] == 3
        self.size = (shape[1], shape[2]) if self.channels_last else (shape[2], shape[3])
        io = json.loads(read_tflite_metadata(self.model_path).get(IO_KEY, "{}"))
        self.precision = io.get("precision") or ("int8" if np.dtype(self.source["dtype"]).kind == "i" else "fp32")
        # One interpreter has one set of tensors: two threads in set_tensor/invoke/get_tensor at once raise
        # "reference to internal data" or, worse, read each other's matte. The other runtimes are re-entrant.
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``N x 3 x H x W`` normalised -> ``N x 1 x H x W`` alpha, through the file's fixed size."""
        height, width = batch.shape[2:]
        mattes = []
        for image in batch:
            x = fit(image.astype(np.float32, copy=False), *self.size)[None]
            if self.channels_last:
                x = x.transpose(0, 2, 3, 1)
            x = to_tensor(x, self.source)
            with self._lock:
                self.interpreter.set_tensor(self.source["index"], x)
                self.interpreter.invoke()
                y = from_tensor(self.interpreter.get_tensor(self.target["index"]), self.target)  # a copy
            y = y.transpose(0, 3, 1, 2) if self.channels_last else y
            mattes.append(fit(y[0], height, width)[None])
        return np.concatenate(mattes)
