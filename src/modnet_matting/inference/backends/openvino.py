"""OpenVINO on the CPU, and the IR files it reads: the weights config and int8 accuracy inside.

The IR is where ``modnet export`` keeps what a later run needs to know: the weights'
preprocessing and card (``IR_CONFIG_PATH``) and, for an int8 model, the held-out
accuracy measured at calibration (``IR_ACCURACY_PATH``), which ``auto`` reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...weights import CheckpointError, WeightsConfig, cache_dir
from ..hardware import openvino_bf16_supported

#: Graph form of IBNorm's instance-norm half after folding, the fastest measured for OpenVINO.
OPENVINO_HALF_NORM = "where"
#: Where ``modnet export`` keeps the weights config in an OpenVINO IR's runtime info.
IR_CONFIG_PATH = ["modnet", "config"]
#: Where the held-out accuracy of an int8 IR is kept in its runtime info.
IR_ACCURACY_PATH = ["modnet", "int8_accuracy"]
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


@dataclass
class Accuracy:
    """A lossy path's mattes against fp32 on held-out photos (alpha in [0, 1] at each photo's size)."""

    images: int
    mad: float  # mean over photos of the per-photo mean absolute difference
    worst_mad: float  # the largest per-photo MAD
    max_abs: float  # the largest single-pixel difference

    @classmethod
    def of(cls, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Accuracy:
        """From (candidate, reference) matte pairs, one per photo; at least one pair."""
        mads, max_abs = [], 0.0
        for candidate, reference in pairs:
            difference = np.abs(candidate.astype(np.float64) - reference)
            mads.append(float(difference.mean()))
            max_abs = max(max_abs, float(difference.max()))
        if not mads:
            raise ValueError("no photos to compare")
        return cls(len(mads), float(np.mean(mads)), float(np.max(mads)), max_abs)


class OpenVinoBackend:
    """OpenVINO on the CPU, from an ONNX file or an OpenVINO IR (``.xml``, e.g. int8 from ``modnet export``).

    Static shapes are much faster than dynamic ones in OpenVINO, so the model is
    reshaped and compiled once per input shape (a second or so) and kept in a
    small least-recently-used cache. ``precision`` is OpenVINO's
    ``INFERENCE_PRECISION_HINT`` for the layers that are not quantised: fp32 or
    bf16 (CPUs with AVX-512 BF16/AMX). An int8 IR reports precision "int8".
    ``threads`` is ``INFERENCE_NUM_THREADS``; None follows ``torch.get_num_threads()``
    so that the server's per-worker thread split applies here too; 0 lets OpenVINO choose.
    ``model`` is the file already read (``read_ir``), to save reading it twice.
    """

    name = "openvino"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        precision: str = "fp32",
        threads: int | None = None,
        max_shapes: int = 8,
        model: object | None = None,
    ) -> None:
        import openvino as ov

        if precision not in _OV_PRECISION:
            raise ValueError(f"the openvino backend runs in {' or '.join(_OV_PRECISION)}, not {precision}")
        if precision == "bf16" and not openvino_bf16_supported():
            raise ValueError("this CPU has no bf16 support that OpenVINO can use; use --precision fp32")
        self.core = ov.Core()
        self.model_path = Path(model_path)
        self.model = model if model is not None else self.core.read_model(str(self.model_path))
        self.quantized = is_quantized(self.model)
        self.compute_precision = precision
        self.precision = "int8" if self.quantized else precision
        threads = torch.get_num_threads() if threads is None else threads
        self.config: dict[str, object] = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
                                          "PERFORMANCE_HINT": "LATENCY"}
        if threads > 0:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.max_shapes = max_shapes
        self._requests: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a compiled model, least recently used first."""
        return list(self._requests)

    def _request(self, shape: tuple[int, ...]):  # noqa: ANN202 - openvino.InferRequest
        request = self._requests.pop(shape, None)
        if request is None:
            model = self.model.clone()
            model.reshape({model.inputs[0]: list(shape)})
            request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        self._requests[shape] = request
        while len(self._requests) > self.max_shapes:
            self._requests.popitem(last=False)
        return request

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        with self._lock:  # one infer request per shape: calls from several threads take turns
            request = self._request(batch.shape)
            request.infer({0: batch})
            return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def is_quantized(ov_model) -> bool:  # noqa: ANN001 - openvino.Model
    return any(op.get_type_name() == "FakeQuantize" for op in ov_model.get_ops())


def int8_rest_precision() -> str:
    """Precision of the layers an int8 model keeps in floating point (norms, resizes, first/last conv).

    bf16 where the CPU has it: ~10% faster than f32 there, and its rounding is
    small next to int8's (docs/performance.md).
    """
    return "bf16" if openvino_bf16_supported() else "fp32"


def int8_cache_path(key: str) -> Path:
    """Where ``modnet export --format openvino-int8 --cache`` puts the int8 IR for weights ``key``."""
    return cache_dir() / "openvino" / f"modnet-{key}-int8.xml"


def check_ir_files(path: Path) -> None:
    """An IR is an XML ``<net>`` with its ``.bin`` beside it; anything else is refused before OpenVINO,
    which would try every frontend it has on it (TensorFlow's among them, logging to stderr)."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if b"<net" not in head:
        raise CheckpointError(f"{path} is not an OpenVINO IR (no <net> element): export one with modnet export "
                              "--format openvino")
    if not path.with_suffix(".bin").is_file():
        raise CheckpointError(f"{path} is an OpenVINO IR without its weights: {path.with_suffix('.bin')} is missing")


def read_ir(path: Path):  # noqa: ANN201 - openvino.Model
    """Read an IR written by ``modnet export``; a bad file is a one-line ``CheckpointError``."""
    import openvino as ov

    check_ir_files(path)
    try:
        return ov.Core().read_model(str(path))
    except Exception as exc:  # openvino raises its own exception types on a bad file
        reason = next((line.strip() for line in str(exc).splitlines()
                       if line.strip() and not line.startswith("Exception from")), type(exc).__name__)
        raise CheckpointError(f"{path} is not a usable OpenVINO model: {reason[:160]}") from None


def read_ir_config(ov_model) -> WeightsConfig:  # noqa: ANN001 - openvino.Model
    """The weights config stored in an OpenVINO model (defaults if absent)."""
    if ov_model.has_rt_info(IR_CONFIG_PATH):
        return WeightsConfig.from_json(ov_model.get_rt_info(IR_CONFIG_PATH).astype(str))
    return WeightsConfig()


def read_ir_accuracy(ov_model) -> Accuracy | None:  # noqa: ANN001 - openvino.Model
    """The held-out accuracy recorded at calibration, if any."""
    if not ov_model.has_rt_info(IR_ACCURACY_PATH):
        return None
    with contextlib.suppress(ValueError, TypeError):
        return Accuracy(**json.loads(ov_model.get_rt_info(IR_ACCURACY_PATH).astype(str)))
    return None


def save_ir(ov_model, path: str | os.PathLike[str], config: WeightsConfig,  # noqa: ANN001 - openvino.Model
            accuracy: Accuracy | None = None) -> Path:
    """Write ``path`` (.xml) and its .bin with the weights config (and accuracy) inside.

    Written under temporary names in the same folder, then renamed, .bin first, so
    a reader never sees an .xml without its weights.
    """
    import openvino as ov

    target = Path(path)
    if target.suffix.lower() != ".xml":
        raise ValueError(f"an OpenVINO IR is an .xml file (with a .bin beside it), not {target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    ov_model.set_rt_info(config.to_json(), IR_CONFIG_PATH)
    if accuracy is not None:
        ov_model.set_rt_info(json.dumps(asdict(accuracy)), IR_ACCURACY_PATH)
    scratch = Path(tempfile.mkdtemp(prefix=".modnet-ir-", dir=target.parent))
    try:
        ov.save_model(ov_model, str(scratch / "model.xml"), compress_to_fp16=False)
        os.replace(scratch / "model.bin", target.with_suffix(".bin"))  # the .xml finds it by its stem
        os.replace(scratch / "model.xml", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
