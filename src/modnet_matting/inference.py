"""The predictor: preprocessing, batching, devices, precision and backends.

``load_model`` returns a ``Predictor`` that turns any supported image input
into a float32 alpha matte at the input's size. Preprocessing follows the
weights' config (``weights.Preprocess``): the authors' reference-size rule,
floor to a multiple of 32, normalise to [-1, 1].
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from .io import ImageInput, to_rgb_uint8
from .weights import Preprocess, WeightsConfig, load_weights

#: Images whose network input would exceed this many pixels are scaled down
#: (aspect kept) so memory stays bounded whatever the photo's size.
DEFAULT_MAX_PIXELS = 2048 * 2048


def network_size(height: int, width: int, pre: Preprocess, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Network input size for an image, by the authors' reference-size rule.

    "reference": sizes with short side <= ref <= long side are kept, others have
    their short side scaled to ref. "short_side": always scale the short side.
    The area is then scaled down to ``max_pixels`` and the sides floored to multiples
    of ``size_divisor``. A side cannot go below one divisor, so for extreme aspect
    ratios (a 8x3,000,000 strip) the long side is shortened instead of the short side
    being rounded back up: the network never runs above ``max_pixels``, at the price
    of squeezing such an image (its matte is resized back to the image anyway).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image has no pixels ({height}x{width})")
    ref, div = pre.reference_size, pre.size_divisor
    rescale = pre.resize_mode == "short_side" or max(height, width) < ref or min(height, width) > ref
    if rescale:
        if width >= height:
            out_h, out_w = ref, int(width / height * ref)
        else:
            out_h, out_w = int(height / width * ref), ref
    else:
        out_h, out_w = height, width
    if out_h * out_w > max_pixels:
        shrink = (max_pixels / (out_h * out_w)) ** 0.5
        out_h, out_w = int(out_h * shrink), int(out_w * shrink)
    out_h, out_w = max(div, out_h - out_h % div), max(div, out_w - out_w % div)
    longest = max(div, max_pixels // min(out_h, out_w) // div * div)  # the other side's room under the cap
    return (min(out_h, longest), out_w) if out_h > out_w else (out_h, min(out_w, longest))


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area interpolation when shrinking (the authors' choice), bilinear when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def normalise(rgb: np.ndarray, pre: Preprocess) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32 normalised with the config's mean and std."""
    mean = np.asarray(pre.mean, np.float32) * 255.0
    std = np.asarray(pre.std, np.float32) * 255.0
    return ((rgb.astype(np.float32) - mean) / std).transpose(2, 0, 1)


class Backend(Protocol):
    """Runs the network on a normalised ``N x 3 x H x W`` float32 batch."""

    name: str

    def run(self, batch: np.ndarray) -> np.ndarray:  # returns N x 1 x H x W float32
        ...


def pick_device(device: str | None = "auto") -> torch.device:
    """"auto" prefers CUDA, then Apple MPS, then the CPU."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:  # torch lists every device type it knows, in one long line
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but is not available on this machine; use --device cpu or auto")
    if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("Apple MPS was requested but is not available on this machine; use --device cpu or auto")
    return chosen


#: Graph form of IBNorm's instance-norm half after folding, per runtime (``model.fuse.HALF_NORM_MODES``),
#: the fastest measured for each (docs/performance.md); None: ONNX Runtime gets the unfolded export
#: (the exporter folds the backbone's BatchNorms; folding IBNorm's too measured no faster there).
TORCH_HALF_NORM = "where"
ONNXRUNTIME_HALF_NORM: str | None = None
OPENVINO_HALF_NORM = "where"

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, not {precision!r}")
        self.device = pick_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            raise ValueError("fp16 is for GPUs; on the CPU use bf16 or fp32")
        if cuda_graphs and (self.device.type != "cuda" or not compile):
            raise ValueError("CUDA graphs need a CUDA device and compile=True")
        self.precision = precision
        if fuse:
            from .model.fuse import fuse_modnet

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
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        with self._autocast():
            matte = self._forward(x)
        return matte.float().cpu().numpy()


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
    """ONNX Runtime on an exported graph (see ``export``): often the fastest CPU path.

    ``device`` "auto" uses CUDA when this onnxruntime build offers it; fp32 only.
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


def openvino_available() -> bool:
    """Whether the ``openvino`` package imports (the ``openvino`` extra)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def openvino_bf16_supported() -> bool:
    """Whether OpenVINO can run bf16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    if not openvino_available():
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


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


_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


class OpenVinoBackend:
    """OpenVINO on the CPU, from an ONNX file or an OpenVINO IR (``.xml``, e.g. int8 from ``modnet export``).

    Static shapes are much faster than dynamic ones in OpenVINO, so the model is
    reshaped and compiled once per input shape (a second or so) and kept in a
    small least-recently-used cache. ``precision`` is OpenVINO's
    ``INFERENCE_PRECISION_HINT`` for the layers that are not quantised: fp32 or
    bf16 (CPUs with AVX-512 BF16/AMX). An int8 IR reports precision "int8".
    ``threads`` is ``INFERENCE_NUM_THREADS``; None follows ``torch.get_num_threads()``
    so that the server's per-worker thread split applies here too; 0 lets OpenVINO choose.
    """

    name = "openvino"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        precision: str = "fp32",
        threads: int | None = None,
        max_shapes: int = 8,
    ) -> None:
        import openvino as ov

        if precision not in _OV_PRECISION:
            raise ValueError(f"the openvino backend runs in {' or '.join(_OV_PRECISION)}, not {precision}")
        if precision == "bf16" and not openvino_bf16_supported():
            raise ValueError("this CPU has no bf16 support that OpenVINO can use; use --precision fp32")
        self.core = ov.Core()
        self.model_path = Path(model_path)
        self.model = self.core.read_model(str(self.model_path))
        self.quantized = any(op.get_type_name() == "FakeQuantize" for op in self.model.get_ops())
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


@dataclass
class Predictor:
    """Image(s) in, float32 alpha matte(s) in [0, 1] at the input size out."""

    backend: Backend
    config: WeightsConfig
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = 4

    @property
    def preprocess(self) -> Preprocess:
        return self.config.preprocess

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 at any size -> normalised network input at the reference size."""
        height, width = network_size(rgb.shape[0], rgb.shape[1], self.preprocess, self.max_pixels)
        return normalise(resize(rgb, height, width), self.preprocess)

    def predict(self, image: ImageInput, color: str = "RGB") -> np.ndarray:
        """Alpha (H x W float32) for one image; ``color`` is the order of numpy input."""
        return self.predict_batch([image], color=color)[0]

    __call__ = predict

    def predict_batch(self, images: Sequence[ImageInput], color: str = "RGB") -> list[np.ndarray]:
        """Alphas for several images; those with the same network size share a batch."""
        rgbs = [to_rgb_uint8(image, color) for image in images]
        return self.predict_rgb(rgbs)

    def predict_rgb(self, rgbs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Like ``predict_batch`` for images already decoded to RGB uint8."""
        inputs = [self.prepare(rgb) for rgb in rgbs]
        results: list[np.ndarray | None] = [None] * len(rgbs)
        for indices in _group_by_shape(inputs, self.batch_size):
            mattes = self.backend.run(np.stack([inputs[i] for i in indices]))
            for i, matte in zip(indices, mattes):
                h, w = rgbs[i].shape[:2]
                results[i] = np.clip(resize(matte[0].astype(np.float32), h, w), 0.0, 1.0)
        return results  # type: ignore[return-value]


def _group_by_shape(inputs: Sequence[np.ndarray], batch_size: int) -> Iterable[list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, array in enumerate(inputs):
        groups.setdefault(array.shape, []).append(index)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start:start + batch_size]


BACKENDS = ("auto", "torch", "compile", "onnx", "openvino")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: Largest mean absolute difference from the fp32 matte that ``auto`` accepts for a lossy path
#: (bf16, int8), measured on a real photo; the issue's accuracy bound.
ACCURACY_BOUND = 0.002
#: Short side of the photo the accuracy check runs on (small: the check runs once per weights).
CHECK_SHORT_SIDE = 256

# What "auto" tries on a CPU, fastest first; lossy ones only if measured within ACCURACY_BOUND.
_CPU_CANDIDATES: dict[str, list[tuple[str, str]]] = {
    "auto": [("openvino", "int8"), ("openvino", "bf16"), ("openvino", "fp32"), ("torch", "bf16"), ("onnx", "fp32"),
             ("torch", "fp32")],
    "fp32": [("openvino", "fp32"), ("onnx", "fp32"), ("torch", "fp32")],
    "bf16": [("openvino", "bf16"), ("torch", "bf16")],
    "int8": [("openvino", "int8")],
    "fp16": [("torch", "fp16")],
}
_LOSSY = {"bf16", "fp16", "int8"}


@dataclass
class _Source:
    """What a backend is built from: our network (exported on demand) or a given ONNX file."""

    model: torch.nn.Module | None
    config: WeightsConfig
    onnx_path: Path | None = None  # a given file: every runtime gets it as it is
    _key: str | None = None
    _exports: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        """Fingerprint of the weights: names cached exports and accuracy checks."""
        if self._key is None:
            if self.model is not None:
                from .export import fingerprint

                self._key = fingerprint(self.model)[:20]
            else:
                from .weights import sha256_of

                self._key = sha256_of(self.onnx_path)[:20]  # type: ignore[arg-type]
        return self._key

    def onnx(self, half_norm: str | None) -> Path:
        """The ONNX graph; exported from our network BatchNorm-folded (``model.fuse``) in ``half_norm`` form,
        or as it is (None)."""
        if self.onnx_path is not None:
            return self.onnx_path
        form = half_norm or "unfolded"
        if form not in self._exports:
            from .export import cached_onnx
            from .model.fuse import fuse_modnet

            network = self.model if half_norm is None else fuse_modnet(self.model, half_norm)  # type: ignore[arg-type]
            self._exports[form] = cached_onnx(network, self.config)  # type: ignore[arg-type]
        return self._exports[form]

    def reference(self) -> Backend:
        """The exact fp32 path lossy candidates are checked against."""
        if self.model is not None:
            return TorchBackend(self.model, "cpu", "fp32")
        return OnnxBackend(self.onnx(ONNXRUNTIME_HALF_NORM), "cpu")


def _need_openvino() -> None:
    if not openvino_available():
        raise ValueError("the openvino backend needs the openvino package: pip install 'modnet-matting[openvino]'")


def _cpu_only(backend: str, device: str | None) -> None:
    if device not in (None, "auto", "cpu"):
        raise ValueError(f"the {backend} backend runs on the CPU here, not on {device!r}")


def int8_rest_precision() -> str:
    """Precision of the layers an int8 model keeps in floating point (norms, resizes, first/last conv).

    bf16 where the CPU has it: ~10% faster than f32 there, and its rounding is
    small next to int8's (docs/performance.md).
    """
    return "bf16" if openvino_bf16_supported() else "fp32"


def int8_cache_path(key: str) -> Path:
    """Where ``modnet export --format openvino-int8 --cache`` puts the int8 IR for weights ``key``."""
    from .weights import cache_dir

    return cache_dir() / "openvino" / f"modnet-{key}-int8.xml"


def _build(source: _Source, backend: str, precision: str, device: str | None, threads: int | None,
           fuse_torch: bool) -> Backend:
    """One concrete (backend, precision) pair; ValueError when it cannot run here."""
    if backend in ("torch", "compile"):
        if source.model is None:
            raise ValueError(f"the {backend} backend needs PyTorch weights, not an ONNX file")
        compiled = backend == "compile"
        return TorchBackend(source.model, device, precision, fuse=fuse_torch or compiled, compile=compiled)
    if backend == "onnx":
        if precision != "fp32":
            raise ValueError(f"the onnx backend runs in fp32 only, not {precision}")
        onnx_providers(device)
        return OnnxBackend(source.onnx(ONNXRUNTIME_HALF_NORM), device, threads=threads or 0)
    if backend == "openvino":
        _cpu_only(backend, device)
        _need_openvino()
        if precision == "int8":
            path = int8_cache_path(source.key) if source.model is not None else None
            if path is None or not path.is_file():
                raise ValueError("no int8 model calibrated for these weights yet: run "
                                 "`modnet export --format openvino-int8 --calibration DIR --cache` first")
            return OpenVinoBackend(path, int8_rest_precision(), threads)
        return OpenVinoBackend(source.onnx(OPENVINO_HALF_NORM), precision, threads)
    raise ValueError(f"unknown backend {backend!r}; choose from: {', '.join(BACKENDS)}")


def make_backend(
    model: torch.nn.Module,
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
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    source = _Source(model, config or WeightsConfig())
    if backend == "auto" or precision == "auto":
        return choose_backend(source, device, precision, threads, only=None if backend == "auto" else backend)
    return _build(source, backend, precision, device, threads, fuse_torch=False)


def choose_backend(
    source: _Source | torch.nn.Module,
    device: str | None = "auto",
    precision: str = "auto",
    threads: int | None = None,
    only: str | None = None,
) -> Backend:
    """The fastest backend that runs here (``backend="auto"``).

    On a GPU: eager PyTorch, fp16 on CUDA when precision is "auto". On a CPU,
    in order: OpenVINO int8 (if calibrated for these weights), OpenVINO bf16
    (CPUs with bf16), OpenVINO fp32, PyTorch bf16 (folded, CPUs with bf16 in
    hardware: 183 against ONNX Runtime fp32's 260 ms at 512x512 on the project's
    CPU), ONNX Runtime fp32, PyTorch fp32 (folded).
    A lossy candidate chosen by precision "auto" must first match the fp32
    matte within ``ACCURACY_BOUND``: by the mean over held-out photos recorded for
    these weights (``_recorded_error``) where there is one, else on the bundled
    photo (measured once per weights and machine, then remembered in the cache).
    ``only`` keeps one backend's candidates.
    """
    if not isinstance(source, _Source):
        source = _Source(source, WeightsConfig())
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    chosen = pick_device(device)
    if chosen.type != "cpu":
        if only not in (None, "torch", "compile"):
            raise ValueError(f"the {only} backend runs on the CPU here, not on {chosen.type}")
        want = precision if precision != "auto" else ("fp16" if chosen.type == "cuda" else "fp32")
        return _build(source, only or "torch", want, str(chosen), threads, fuse_torch=True)
    candidates = [(b, p) for b, p in _CPU_CANDIDATES[precision] if only is None or b == only or
                  (only == "compile" and b == "torch")]
    if not candidates:
        raise ValueError(f"the {only} backend does not run {precision} on a CPU")
    errors = []
    if precision == "auto" and ("torch", "bf16") in candidates and not cpu_bf16_native():
        candidates = [c for c in candidates if c != ("torch", "bf16")]
    for name, prec in candidates:
        name = "compile" if only == "compile" else name
        try:
            backend = _build(source, name, prec, "cpu", threads, fuse_torch=True)
        except (ValueError, ImportError, RuntimeError, OSError) as exc:
            errors.append(f"{name} {prec}: {exc}")
            continue
        if precision == "auto" and prec in _LOSSY:
            recorded = _recorded_error(backend, name, prec, source.config)
            if recorded is not None:
                if recorded > ACCURACY_BOUND:
                    errors.append(f"{name} {prec}: held-out photos measured {recorded:.4f} > {ACCURACY_BOUND}")
                    continue
                return backend
            try:
                error = _measured_error(source, backend, name, prec)
            except (RuntimeError, ValueError, OSError) as exc:  # e.g. the runtime cannot compile it here
                errors.append(f"{name} {prec}: {exc}")
                continue
            if error > ACCURACY_BOUND:
                errors.append(f"{name} {prec}: mean abs difference {error:.4f} > {ACCURACY_BOUND}")
                continue
        return backend
    raise ValueError("no backend can run here: " + "; ".join(errors))


def _recorded_error(backend: Backend, name: str, precision: str, config: WeightsConfig) -> float | None:
    """Mean matte error against fp32 over held-out real photos, where it was measured for these weights.

    An int8 IR carries the figure from its calibration (``quantize``); a weights
    file may carry ``card["accuracy"]["<backend> <precision>"]["mad"]`` (written by
    ``benchmarks/fast_accuracy.py --record``). That is the issue's criterion (MAD
    over real photos), so it is preferred to the one-photo check.
    """
    if isinstance(backend, OpenVinoBackend) and backend.quantized:
        from .quantize import read_ir_accuracy

        accuracy = read_ir_accuracy(backend.model)
        return None if accuracy is None else accuracy.mad
    record = (config.card or {}).get("accuracy", {}).get(f"{name} {precision}")
    try:
        return float(record["mad"]) if record is not None else None
    except (KeyError, TypeError, ValueError):
        return None  # a malformed record: fall back to measuring


def _check_input(pre: Preprocess) -> np.ndarray:
    """The bundled photo at a small network size, normalised: the accuracy check's input."""
    from importlib import resources

    from .io import read_image

    rgb = read_image(Path(str(resources.files("modnet_matting") / "assets" / "grace_hopper.jpg")))
    small = dataclasses.replace(pre, reference_size=CHECK_SHORT_SIDE, resize_mode="short_side")
    height, width = network_size(rgb.shape[0], rgb.shape[1], small)
    return normalise(resize(rgb, height, width), pre)[None]


def _measured_error(source: _Source, backend: Backend, name: str, precision: str) -> float:
    """Mean |candidate - fp32| matte difference on the check photo; remembered per weights and machine."""
    from .weights import cache_dir

    versions = f"ov{_openvino_version()}" if name == "openvino" else f"torch{torch.__version__}"
    key = f"{source.key}:{name}:{precision}:{versions}:{_cpu_name()}"
    store = cache_dir() / "auto" / "accuracy.json"
    known = _read_json(store)
    if key not in known:
        batch = _check_input(source.config.preprocess)
        known[key] = float(np.mean(np.abs(backend.run(batch) - source.reference().run(batch))))
        with contextlib.suppress(OSError):  # a read-only cache only costs a re-check next time
            from .io import atomic_write

            atomic_write(store, (json.dumps({**_read_json(store), key: known[key]}, indent=1) + "\n").encode())
    return float(known[key])


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _openvino_version() -> str:
    import openvino as ov

    return ov.get_version().split("-")[0]


def _cpu_name() -> str:
    """The CPU model (bf16/int8 numerics depend on the instruction set)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str | None = "auto",
    precision: str = "auto",
    backend: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threads: int | None = None,
) -> Predictor:
    """A predictor for registry weights (by name) or a checkpoint file (by path).

    ``backend``/``precision`` "auto" (the defaults) pick the fastest path on this
    machine that stays within ``ACCURACY_BOUND`` of the fp32 matte (see
    ``choose_backend``); name them to force one ("torch"/"fp32" is the authors' way).
    An ``.onnx`` path (ours from ``modnet export``, or any graph with the same
    input/output) runs on ONNX Runtime or OpenVINO; an OpenVINO IR (``.xml``,
    e.g. the int8 one from ``modnet export --format openvino-int8``) on OpenVINO.
    """
    suffix = str(name_or_path).lower() if name_or_path is not None else ""
    if suffix.endswith(".onnx"):
        return _load_onnx(Path(name_or_path).expanduser(), device, precision, max_pixels, backend, threads)
    if suffix.endswith(".xml"):
        if backend not in ("auto", "openvino"):
            raise ValueError(f"an OpenVINO IR (.xml) runs on the openvino backend, not {backend}: pass the "
                             ".safetensors or .ckpt it came from for that backend")
        return _load_openvino_ir(Path(name_or_path).expanduser(), device, precision, max_pixels, threads)
    model, config = load_weights(name_or_path)
    return Predictor(make_backend(model, backend, device, precision, threads, config), config, max_pixels=max_pixels)


def _load_onnx(path: Path, device: str | None, precision: str, max_pixels: int, backend: str = "auto",
               threads: int | None = None) -> Predictor:
    """An ONNX file on ONNX Runtime (``backend`` "onnx", or "auto" on a GPU) or OpenVINO ("openvino", "auto")."""
    from .export import read_onnx_config
    from .weights import CheckpointError, WeightsNotFoundError

    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    if backend not in ("auto", "onnx", "openvino"):
        raise ValueError(f"an .onnx model runs on the onnx or openvino backend, not {backend}")
    if backend == "onnx" and precision not in ("fp32", "auto"):
        raise ValueError(f"an .onnx model runs in fp32 only on the onnx backend, not {precision}")
    on_cpu = pick_device(device).type == "cpu"
    if backend != "openvino":
        onnx_providers(device)  # device errors are the user's, not the file's
    try:
        config = read_onnx_config(path)
        if backend == "onnx" or not on_cpu:
            chosen: Backend = OnnxBackend(path, device, threads=threads or 0)
        else:
            source = _Source(None, config, onnx_path=path)
            chosen = choose_backend(source, "cpu", precision, threads, only=None if backend == "auto" else backend)
    except ValueError as exc:
        if not str(exc).startswith("no backend can run here"):
            raise  # the user's choice of precision or device
        raise CheckpointError(f"{path} is not a usable ONNX model ({exc})") from None
    except Exception as exc:  # onnx/onnxruntime/openvino raise their own exception types
        raise CheckpointError(f"{path} is not a usable ONNX model ({type(exc).__name__}: {exc})") from None
    return Predictor(chosen, config, max_pixels=max_pixels)


def _load_openvino_ir(path: Path, device: str | None, precision: str, max_pixels: int,
                      threads: int | None) -> Predictor:
    """An OpenVINO IR written by ``modnet export`` (its config is in the IR's runtime info).

    An int8 IR runs its float layers in ``int8_rest_precision()`` unless fp32 is asked for;
    an fp32 IR runs in fp32 unless bf16 is asked for.
    """
    from .weights import CheckpointError, WeightsNotFoundError

    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    _check_ir_files(path)
    _cpu_only("openvino", device)
    _need_openvino()
    if precision not in ("auto", "fp32", "bf16", "int8"):
        raise ValueError(f"an OpenVINO model runs in fp32, bf16 or int8, not {precision}")
    try:
        backend = OpenVinoBackend(path, "bf16" if precision == "bf16" else "fp32", threads)
        config = read_ir_config(backend.model)
    except ValueError:
        raise
    except Exception as exc:  # openvino raises its own exception types on a bad file
        reason = next((line.strip() for line in str(exc).splitlines()
                       if line.strip() and not line.startswith("Exception from")), type(exc).__name__)
        raise CheckpointError(f"{path} is not a usable OpenVINO model: {reason[:160]}") from None
    if precision == "int8" and not backend.quantized:
        raise ValueError(f"{path} is not an int8 model; export one with --format openvino-int8")
    if backend.quantized and precision in ("auto", "int8") and int8_rest_precision() == "bf16":
        backend.compute_precision = "bf16"  # nothing is compiled before the first run
        backend.config["INFERENCE_PRECISION_HINT"] = _OV_PRECISION["bf16"]
    return Predictor(backend, config, max_pixels=max_pixels)


def _check_ir_files(path: Path) -> None:
    """An IR is an XML ``<net>`` with its ``.bin`` beside it; anything else is refused before OpenVINO,
    which would try every frontend it has on it (TensorFlow's among them, logging to stderr)."""
    from .weights import CheckpointError

    with open(path, "rb") as handle:
        head = handle.read(4096)
    if b"<net" not in head:
        raise CheckpointError(f"{path} is not an OpenVINO IR (no <net> element): export one with modnet export "
                              "--format openvino")
    if not path.with_suffix(".bin").is_file():
        raise CheckpointError(f"{path} is an OpenVINO IR without its weights: {path.with_suffix('.bin')} is missing")


#: Where ``modnet export`` keeps the weights config in an OpenVINO IR's runtime info.
IR_CONFIG_PATH = ["modnet", "config"]


def read_ir_config(model) -> WeightsConfig:  # noqa: ANN001 - openvino.Model
    """The weights config stored in an OpenVINO model (defaults if absent)."""
    if model.has_rt_info(IR_CONFIG_PATH):
        return WeightsConfig.from_json(model.get_rt_info(IR_CONFIG_PATH).astype(str))
    return WeightsConfig()
