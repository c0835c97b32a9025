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
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...weights import CheckpointError, WeightsConfig, cache_dir, sha256_of
from ..hardware import openvino_bf16_supported

#: Graph form of IBNorm's instance-norm half after folding, the fastest measured for OpenVINO.
OPENVINO_HALF_NORM = "where"
#: Where ``modnet export`` keeps the weights config in an OpenVINO IR's runtime info.
IR_CONFIG_PATH = ["modnet", "config"]
#: Where the held-out accuracy of an int8 IR is kept in its runtime info.
IR_ACCURACY_PATH = ["modnet", "int8_accuracy"]
#: Where an IR keeps the SHA-256 of the weights file it was made from (a shipped int8 model is used only
#: for the very file it was calibrated on).
IR_WEIGHTS_PATH = ["modnet", "weights_sha256"]
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
#: Largest mean absolute difference from the fp32 matte that ``auto`` accepts for a lossy path
#: (bf16, int8), measured on real photos; the issue's accuracy bound.
ACCURACY_BOUND = 0.002
#: Compiled models kept on disk (one per model, input shape and precision, ~26 MB each; the oldest go first).
MAX_COMPILED = 8


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
    ``threads`` is ``INFERENCE_NUM_THREADS``; None follows ``torch.get_num_threads()`` where
    PyTorch is loaded (the server's per-worker thread split sets it), else OpenVINO chooses, as with 0.
    ``model`` is the file already read (``read_ir``), to save reading it twice.

    Compiled models are cached on disk (``compiled_cache``): a later process imports one in about
    a third of the time compiling takes (0.12 against 0.29-0.33 s at 352x512 on the project's CPU).
    ``run_uint8`` takes the frame as it comes (``N x H x W x 3`` uint8, at the network size): the
    conversion to float and the normalisation run inside the compiled graph, with no float copy.
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
        if threads is None:
            threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else 0
        self.config: dict[str, object] = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
                                          "PERFORMANCE_HINT": "LATENCY"}
        if threads > 0:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.compiled_cache = compiled_cache()
        if self.compiled_cache is not None:
            self.config["CACHE_DIR"] = str(self.compiled_cache)
        self.max_shapes = max_shapes
        self._requests: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a compiled model, least recently used first (NHWC for ``run_uint8``'s)."""
        return [shape for shape, _ in self._requests]

    def _request(self, shape: tuple[int, ...], normalise: tuple | None = None):  # noqa: ANN202 - InferRequest
        """The infer request for an NCHW float input of ``shape``, or (``normalise`` = (mean, std) in
        0-255 units) for an NHWC uint8 input of ``shape`` normalised inside the graph."""
        key = (shape, normalise)
        request = self._requests.pop(key, None)
        if request is None:
            model = self.model.clone()
            if normalise is None:
                model.reshape({model.inputs[0]: list(shape)})
            else:
                batch, height, width, _ = shape
                model.reshape({model.inputs[0]: [batch, 3, height, width]})
                model = _uint8_input(model, *normalise)
            request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
            if self.compiled_cache is not None:
                prune_compiled(self.compiled_cache)
        self._requests[key] = request
        while len(self._requests) > self.max_shapes:
            self._requests.popitem(last=False)
        return request

    def _infer(self, request, batch: np.ndarray) -> np.ndarray:  # noqa: ANN001 - openvino.InferRequest
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        with self._lock:  # one infer request per shape: calls from several threads take turns
            return self._infer(self._request(batch.shape), batch)

    def run_uint8(self, batch: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
        """``run`` for ``N x H x W x 3`` uint8 frames; ``mean`` and ``std`` as in ``Preprocess`` (0-1 units)."""
        batch = np.ascontiguousarray(batch, np.uint8)
        normalise = (tuple(255.0 * m for m in mean), tuple(255.0 * s for s in std))
        with self._lock:
            return self._infer(self._request(batch.shape, normalise), batch)


def _uint8_input(model, mean: tuple[float, ...], std: tuple[float, ...]):  # noqa: ANN001, ANN202 - openvino.Model
    """``model`` taking NHWC uint8, converted and normalised ((x - mean) / std) by OpenVINO's preprocessing."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean(list(mean)).scale(list(std))
    return ppp.build()


def compiled_cache() -> Path | None:
    """Where OpenVINO keeps compiled models (under ``MODNET_HOME``); None where it cannot be created."""
    folder = cache_dir() / "openvino" / "compiled"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def prune_compiled(folder: Path, keep: int = MAX_COMPILED) -> None:
    """Keep the ``keep`` newest compiled models: a server sees many input shapes, the disk stays bounded."""
    blobs = []
    for path in folder.glob("*.blob"):
        with contextlib.suppress(OSError):
            blobs.append((path.stat().st_mtime, path))
    for _, path in sorted(blobs, reverse=True)[keep:]:
        with contextlib.suppress(OSError):
            path.unlink()


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


def made_from(ov_model, weights_file: Path) -> bool:  # noqa: ANN001 - openvino.Model
    """Whether the IR records that it was made from this very weights file (by its SHA-256)."""
    if not ov_model.has_rt_info(IR_WEIGHTS_PATH):
        return False
    return ov_model.get_rt_info(IR_WEIGHTS_PATH).astype(str) == sha256_of(weights_file)


def read_ir_accuracy(ov_model) -> Accuracy | None:  # noqa: ANN001 - openvino.Model
    """The held-out accuracy recorded at calibration, if any."""
    if not ov_model.has_rt_info(IR_ACCURACY_PATH):
        return None
    with contextlib.suppress(ValueError, TypeError):
        return Accuracy(**json.loads(ov_model.get_rt_info(IR_ACCURACY_PATH).astype(str)))
    return None


def save_ir(ov_model, path: str | os.PathLike[str], config: WeightsConfig,  # noqa: ANN001 - openvino.Model
            accuracy: Accuracy | None = None, weights_sha256: str | None = None) -> Path:
    """Write ``path`` (.xml) and its .bin with the weights config (and accuracy, and the SHA-256 of the
    weights file it came from) inside.

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
    if weights_sha256 is not None:
        ov_model.set_rt_info(weights_sha256, IR_WEIGHTS_PATH)
    scratch = Path(tempfile.mkdtemp(prefix=".modnet-ir-", dir=target.parent))
    try:
        ov.save_model(ov_model, str(scratch / "model.xml"), compress_to_fp16=False)
        os.replace(scratch / "model.bin", target.with_suffix(".bin"))  # the .xml finds it by its stem
        os.replace(scratch / "model.xml", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
