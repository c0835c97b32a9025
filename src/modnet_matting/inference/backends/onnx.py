"""ONNX Runtime on an exported graph: CPU, or CUDA where the onnxruntime build has it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: None: ONNX Runtime gets the unfolded export (the exporter folds the backbone's
#: BatchNorms; folding IBNorm's too measured no faster there, docs/performance.md).
ONNXRUNTIME_HALF_NORM: str | None = None


def onnx_providers(device: str | None = "auto") -> list[str]:
    """ONNX Runtime providers for a device name; "auto" takes CUDA when the build has it."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device in (None, "auto", "cpu"):
        want_cuda = device != "cpu" and has_cuda
    elif str(device).split(":")[0] == "cuda" and has_cuda:
        want_cuda = True
    else:
        raise ValueError(f"the onnx backend cannot run on {device!r} here; available: {', '.join(available)}")
    return (["CUDAExecutionProvider"] if want_cuda else []) + ["CPUExecutionProvider"]


class OnnxBackend:
    """ONNX Runtime on an exported graph (see ``export``); fp32 only.

    ``device`` "auto" uses CUDA when this onnxruntime build offers it.
    """

    name = "onnx"
    precision = "fp32"

    def __init__(self, model_path: str | os.PathLike[str], device: str | None = "auto", threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.model_path = Path(model_path)
        self.session = ort.InferenceSession(str(self.model_path), options, providers=onnx_providers(device))
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]
