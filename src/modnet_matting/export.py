"""Exporting the inference path to ONNX and TorchScript.

Both formats take ``input`` ``[B, 3, H, W]`` float32 RGB in [-1, 1] (H and W
multiples of 32) and give ``output`` ``[B, 1, H, W]`` alpha in [0, 1]: the names
the authors' ONNX release uses, so their downstream code works unchanged. The
ONNX graph has dynamic batch, height and width and carries our weights config
(preprocessing) in its metadata under ``modnet_config``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .io import atomic_write
from .model import MatteOnly
from .weights import WeightsConfig, cache_dir

INPUT_NAME = "input"
OUTPUT_NAME = "output"
MIN_OPSET = 17
CONFIG_KEY = "modnet_config"
#: Example size used for tracing; the graphs are checked at other sizes in tests.
TRACE_SIZE = (256, 256)


def _inference_module(model: nn.Module) -> nn.Module:
    net = model.net if isinstance(model, MatteOnly) else model
    return MatteOnly(net).eval()


def _example(size: tuple[int, int] = TRACE_SIZE) -> torch.Tensor:
    return torch.zeros(1, 3, *size)


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Tracing warns about constant Python bools in shape checks and about deprecation;
    neither affects the graph (the parity tests check other sizes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def onnx_bytes(model: nn.Module, opset: int = MIN_OPSET, config: WeightsConfig | None = None) -> bytes:
    """Serialised ONNX model of the inference path (dynamic batch/height/width)."""
    import onnx

    if opset < MIN_OPSET:
        raise ValueError(f"opset must be at least {MIN_OPSET}, not {opset}")
    module = _inference_module(model).cpu().float()
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with _quiet_tracing(), torch.no_grad():
        torch.onnx.export(
            module,
            (_example(),),
            buffer,
            dynamo=False,  # the TorchScript-based exporter needs no onnxscript and handles dynamic H/W
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, (config or WeightsConfig()).to_json()
    proto.producer_name = "modnet-matting"
    return proto.SerializeToString()


def export_onnx(
    model: nn.Module, path: str | Path, opset: int = MIN_OPSET, config: WeightsConfig | None = None
) -> Path:
    """Write the ONNX model atomically to ``path``."""
    return atomic_write(path, onnx_bytes(model, opset, config))


def export_torchscript(model: nn.Module, path: str | Path, config: WeightsConfig | None = None) -> Path:
    """Trace ``MatteOnly`` and save it atomically, config in the extra file ``modnet_config.json``.

    The trace is size-independent because every resize in the network is by a
    scale factor (checked at other sizes in the tests).
    """
    module = _inference_module(model).cpu().float()
    buffer = io.BytesIO()
    extra = {f"{CONFIG_KEY}.json": (config or WeightsConfig()).to_json()}
    with _quiet_tracing(), torch.no_grad():
        torch.jit.save(torch.jit.trace(module, _example()), buffer, _extra_files=extra)
    return atomic_write(path, buffer.getvalue())


def read_onnx_config(path: str | Path) -> WeightsConfig:
    """The weights config stored in an ONNX file's metadata (defaults if absent,
    e.g. for the authors' own ONNX export)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == CONFIG_KEY:
            return WeightsConfig.from_json(entry.value)
    return WeightsConfig()


def fingerprint(model: nn.Module) -> str:
    """SHA-256 of the weights (and torch version): names the cached ONNX file."""
    digest = hashlib.sha256(torch.__version__.encode())
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cached_onnx(model: nn.Module, config: WeightsConfig | None = None) -> Path:
    """An ONNX file for ``model`` in the cache, exported on first use only.

    Falls back to the system temp folder when the cache is not writable.
    """
    name = f"modnet-{fingerprint(model)[:20]}.onnx"
    for folder in (cache_dir() / "onnx", Path(tempfile.gettempdir()) / "modnet_matting_onnx"):
        path = folder / name
        if path.exists():
            return path
        try:
            return export_onnx(model, path, config=config)
        except OSError:
            continue
    raise OSError(f"cannot write an ONNX export to {cache_dir() / 'onnx'} or the temp folder")


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference between two outputs (parity checks)."""
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
