"""The predictor: preprocessing, batching, devices, precision and backends.

``load_model`` returns a ``Predictor`` that turns any supported image input
into a float32 alpha matte at the input's size. Preprocessing follows the
weights' config (``weights.Preprocess``): the authors' reference-size rule,
floor to a multiple of 32, normalise to [-1, 1].
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
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
    Sides are floored to multiples of ``size_divisor`` (at least one divisor),
    then scaled down if the area exceeds ``max_pixels``.
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
    return max(div, out_h - out_h % div), max(div, out_w - out_w % div)


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
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but is not available on this machine; use --device cpu or auto")
    if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("Apple MPS was requested but is not available on this machine; use --device cpu or auto")
    return chosen


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend:
    """Eager PyTorch; fp16/bf16 through autocast, channels_last memory layout."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | None = "auto", precision: str = "fp32") -> None:
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, not {precision!r}")
        self.device = pick_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            raise ValueError("fp16 is for GPUs; on the CPU use bf16 or fp32")
        self.precision = precision
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        with self._autocast():
            matte = self.model.forward_matte(x)
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

    def __init__(self, model_path: str | os.PathLike[str], device: str | None = "auto", threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.model_path = Path(model_path)
        self.session = ort.InferenceSession(str(self.model_path), options, providers=onnx_providers(device))
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]


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


def make_backend(
    model: torch.nn.Module, backend: str = "torch", device: str | None = "auto", precision: str = "fp32"
) -> Backend:
    """Build the named backend around a loaded network.

    "onnx" exports the network once to the cache (keyed by a hash of the
    weights) and runs it with ONNX Runtime.
    """
    if backend == "torch":
        return TorchBackend(model, device, precision)
    if backend == "onnx":
        if precision != "fp32":
            raise ValueError(f"the onnx backend runs in fp32 only, not {precision}")
        from .export import cached_onnx

        return OnnxBackend(cached_onnx(model), device)
    raise ValueError(f"unknown backend {backend!r}; choose from: {', '.join(BACKENDS)}")


BACKENDS = ("torch", "onnx")


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str | None = "auto",
    precision: str = "fp32",
    backend: str = "torch",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Predictor:
    """A predictor for registry weights (by name) or a checkpoint file (by path).

    An ``.onnx`` path (ours from ``modnet export``, or any graph with the same
    input/output) always runs on the onnx backend.
    """
    if name_or_path is not None and str(name_or_path).lower().endswith(".onnx"):
        return _load_onnx(Path(name_or_path).expanduser(), device, precision, max_pixels)
    model, config = load_weights(name_or_path)
    return Predictor(make_backend(model, backend, device, precision), config, max_pixels=max_pixels)


def _load_onnx(path: Path, device: str | None, precision: str, max_pixels: int) -> Predictor:
    from .export import read_onnx_config
    from .weights import CheckpointError, WeightsNotFoundError

    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")
    if precision != "fp32":
        raise ValueError(f"an .onnx model runs in fp32 only, not {precision}")
    onnx_providers(device)  # device errors are the user's, not the file's
    try:
        config = read_onnx_config(path)
        backend = OnnxBackend(path, device)
    except Exception as exc:  # onnx/onnxruntime raise their own exception types
        raise CheckpointError(f"{path} is not a usable ONNX model ({type(exc).__name__}: {exc})") from None
    return Predictor(backend, config, max_pixels=max_pixels)
