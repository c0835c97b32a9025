"""TensorFlow Lite export through litert-torch: fixed size, float32, NHWC or NCHW, config inside.

Phones want a fixed input size, so the model is converted for one (``size``, height x
width, multiples of 32). Input ``input``: float32 RGB normalised to [-1, 1] (the weights'
mean/std), ``[1, H, W, 3]`` (NHWC, the TFLite convention; default) or ``[1, 3, H, W]``.
Output ``alpha`` in [0, 1], ``[1, H, W, 1]`` or ``[1, 1, H, W]``. The network is the
BatchNorm-folded one (``model.fuse``). The weights config and this description are stored in
the file's metadata (``modnet_config``, ``modnet_io``), readable with ``read_tflite_metadata``.

litert-torch (``pip install 'modnet-matting[tflite]'``) pins typing-extensions below what
FastAPI needs, so install the extra in an environment of its own (docs/deploy.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from ..io import atomic_write
from ..weights import WeightsConfig
from . import DEFAULT_SIZE, check_size, folded_inference_module, need

LAYOUTS = ("nhwc", "nchw")
CONFIG_KEY, IO_KEY = "modnet_config", "modnet_io"


class _ChannelsLast(nn.Module):
    """NHWC in and out around the NCHW network (the transposes fold into the converted graph)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, image):  # noqa: ANN001, ANN201 - a tensor
        return self.inner(image.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def io_description(size: tuple[int, int], layout: str) -> dict:
    height, width = size
    shapes = {"nhwc": ([1, height, width, 3], [1, height, width, 1]), "nchw": ([1, 3, height, width],
                                                                           [1, 1, height, width])}[layout]
    return {"input": {"name": "input", "shape": shapes[0], "dtype": "float32", "layout": layout,
                      "normalisation": "RGB / 127.5 - 1 (the weights' mean and std)"},
            "output": {"name": "alpha", "shape": shapes[1], "dtype": "float32", "range": [0, 1]}}


def export_tflite(model: nn.Module, path: str | os.PathLike[str], config: WeightsConfig | None = None,
                  size: tuple[int, int] = DEFAULT_SIZE, layout: str = "nhwc") -> Path:
    """Convert and write ``path`` (.tflite) atomically; returns the path."""
    need("litert_torch", "tflite", "TFLite export")
    import litert_torch
    import torch

    config = config or WeightsConfig()
    target = Path(path)
    if target.suffix.lower() != ".tflite":
        raise ValueError(f"a TFLite model is written as NAME.tflite, not {target.name}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout is nhwc or nchw, not {layout}")
    check_size(size, config)
    module = folded_inference_module(model)
    example = torch.zeros(1, 3, *size)
    if layout == "nhwc":
        module, example = _ChannelsLast(module).eval(), example.permute(0, 2, 3, 1).contiguous()
    with torch.no_grad():
        converted = litert_torch.convert(module, (example,))
    metadata = {CONFIG_KEY: config.to_json(), IO_KEY: json.dumps(io_description(size, layout))}
    return atomic_write(target, finish(bytes(converted.model_content()), metadata))


def finish(flatbuffer: bytes, entries: dict[str, str]) -> bytes:
    """The converted model with our tensor names (``input``, ``alpha``) and ``entries`` as TFLite metadata
    (named buffers, the format's own place for them)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].name, graph.tensors[graph.outputs[0]].name = b"input", b"alpha"
    for signature in model.signatureDefs or []:
        signature.inputs[0].name, signature.outputs[0].name = b"input", b"alpha"
    model.metadata = list(model.metadata or [])
    for name, text in entries.items():
        buffer = schema.BufferT()
        buffer.data = list(text.encode())
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_tflite_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The named metadata entries of a .tflite file (ours: ``modnet_config``, ``modnet_io``)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    found = {}
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        found[entry.Name().decode()] = bytes(data).decode() if not isinstance(data, int) else ""
    return found


def run_tflite(path: str | os.PathLike[str], batch, threads: int = 2):  # noqa: ANN001, ANN201 - numpy arrays
    """Run a .tflite export on ``batch`` (N x 3 x H x W, normalised) with LiteRT; N x 1 x H x W alpha."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    channels_last = int(source["shape"][-1]) == 3
    mattes = []
    for image in batch:
        x = image[None].transpose(0, 2, 3, 1) if channels_last else image[None]
        interpreter.set_tensor(source["index"], np.ascontiguousarray(x, np.float32))
        interpreter.invoke()
        y = interpreter.get_tensor(target["index"])
        mattes.append(y.transpose(0, 3, 1, 2) if channels_last else y)
    return np.concatenate(mattes)
