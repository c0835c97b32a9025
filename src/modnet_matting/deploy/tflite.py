"""TensorFlow Lite export through litert-torch: fixed size, fp32, fp16 or int8, NHWC or NCHW, config inside.

Phones want a fixed input size, so the model is converted for one (``size``, height x
width, multiples of 32). Input ``input``: RGB normalised to [-1, 1] (the weights' mean/std),
``[1, H, W, 3]`` (NHWC, the TFLite convention; default) or ``[1, 3, H, W]``; output ``alpha``
in [0, 1], ``[1, H, W, 1]`` or ``[1, 1, H, W]``. The network is the BatchNorm-folded one
(``model.fuse``). Precisions, all through ai-edge-quantizer from the fp32 file:

- ``fp32``: float32 throughout;
- ``fp16``: float16 weights, float32 compute and tensors (half the size);
- ``int8``: int8 weights and activations, calibrated on real photos, int8 input and output
  tensors (scale and zero point in the tensors; the LiteRT backend converts).

The weights config, this I/O description and, for fp16/int8, the matte's difference from
the fp32 file on held-out photos are stored in the file's metadata (``modnet_config``,
``modnet_io``, ``modnet_accuracy``), readable with ``read_tflite_metadata``.

litert-torch (``pip install 'modnet-matting[tflite]'``) pins typing-extensions below what
FastAPI needs, so install the extra in an environment of its own (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch import nn

from ..inference.backends.litert import ACCURACY_KEY, CONFIG_KEY, IO_KEY, LiteRTBackend, fit
from ..inference.backends.openvino import Accuracy
from ..io import atomic_write
from ..weights import WeightsConfig
from . import DEFAULT_SIZE, check_size, folded_inference_module, need

LAYOUTS = ("nhwc", "nchw")
PRECISIONS = ("fp32", "fp16", "int8")


class _ChannelsLast(nn.Module):
    """NHWC in and out around the NCHW network (the transposes fold into the converted graph)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, image):  # noqa: ANN001, ANN201 - a tensor
        return self.inner(image.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def io_description(size: tuple[int, int], layout: str, precision: str = "fp32") -> dict:
    height, width = size
    shapes = {"nhwc": ([1, height, width, 3], [1, height, width, 1]), "nchw": ([1, 3, height, width],
                                                                           [1, 1, height, width])}[layout]
    dtype = "int8 (quantised: real = (q - zero_point) * scale, from the tensor)" if precision == "int8" else "float32"
    return {"precision": precision,
            "input": {"name": "input", "shape": shapes[0], "dtype": dtype, "layout": layout,
                      "normalisation": "RGB / 127.5 - 1 (the weights' mean and std)"},
            "output": {"name": "alpha", "shape": shapes[1], "dtype": dtype, "range": [0, 1]}}


def export_tflite(model: nn.Module, path: str | os.PathLike[str], config: WeightsConfig | None = None,
                  size: tuple[int, int] = DEFAULT_SIZE, layout: str = "nhwc", precision: str = "fp32",
                  calibration: Sequence[np.ndarray] = (), holdout: Sequence[np.ndarray] = (),
                  log: Callable[[str], None] = print) -> Path:
    """Convert and write ``path`` (.tflite) atomically; returns the path.

    ``calibration``: normalised ``3 x H x W`` photos (any size) that set int8's ranges (int8
    needs them). ``holdout``: other photos on which fp16/int8 are measured against fp32; the
    figure goes into the metadata.
    """
    need("litert_torch", "tflite", "TFLite export")
    config = config or WeightsConfig()
    target = Path(path)
    if target.suffix.lower() != ".tflite":
        raise ValueError(f"a TFLite model is written as NAME.tflite, not {target.name}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout is nhwc or nchw, not {layout}")
    if precision not in PRECISIONS:
        raise ValueError(f"a TFLite export is fp32, fp16 or int8, not {precision}")
    if precision == "int8" and not calibration:
        raise ValueError("int8 needs calibration photos (--calibration DIR)")
    check_size(size, config)
    fp32 = _convert(model, size, layout)
    entries = {CONFIG_KEY: config.to_json(), IO_KEY: json.dumps(io_description(size, layout, precision))}
    if precision == "fp32":
        return atomic_write(target, finish(fp32, entries))
    scratch = Path(tempfile.mkdtemp(prefix="modnet-tflite-"))
    try:
        float_file = scratch / "fp32.tflite"
        float_file.write_bytes(finish(fp32, {}))
        quantized = _quantize(float_file, precision, [fit(x, *size) for x in calibration], layout)
        if holdout:
            candidate = scratch / "candidate.tflite"
            candidate.write_bytes(quantized)
            accuracy = compare_files(candidate, float_file, holdout)
            entries[ACCURACY_KEY] = json.dumps({**dataclasses.asdict(accuracy), "against": "the fp32 export"})
            log(f"{precision} vs fp32 on {accuracy.images} held-out photos: MAD {accuracy.mad:.5f} (worst photo "
                f"{accuracy.worst_mad:.5f}, worst pixel {accuracy.max_abs:.3f}); recorded in the file")
        return atomic_write(target, finish(quantized, entries))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _convert(model: nn.Module, size: tuple[int, int], layout: str) -> bytes:
    """The fp32 flatbuffer of the folded inference path at ``size`` in ``layout``."""
    import litert_torch
    import torch

    module = folded_inference_module(model)
    example = torch.zeros(1, 3, *size)
    if layout == "nhwc":
        module, example = _ChannelsLast(module).eval(), example.permute(0, 2, 3, 1).contiguous()
    with torch.no_grad():
        converted = litert_torch.convert(module, (example,))
    return bytes(converted.model_content())


def _quantize(float_file: Path, precision: str, calibration: Sequence[np.ndarray], layout: str) -> bytes:
    """fp16 weights (float casting), or int8 weights and activations with ranges from ``calibration``."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    quiet = {"enable_progress_bar": False, "enable_progress_report": False}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its reports
        if precision == "fp16":
            tool = quantizer.Quantizer(str(float_file))
            tool.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                        num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
            return bytes(tool.quantize(**quiet).quantized_model)
        tool = quantizer.Quantizer(str(float_file), recipe.static_wi8_ai8())
        signature = next(iter(Interpreter(model_path=str(float_file)).get_signature_list()))
        samples = [{"input": x[None].transpose(0, 2, 3, 1) if layout == "nhwc" else x[None]} for x in calibration]
        ranges = tool.calibrate({signature: samples}, num_threads=os.cpu_count() or 1)
        return bytes(tool.quantize(ranges, **quiet).quantized_model)


def compare_files(candidate: Path, reference: Path, photos: Sequence[np.ndarray]) -> Accuracy:
    """Per-photo MAD between two .tflite files' mattes at their size (the same size: no resizing error)."""
    ours, theirs = LiteRTBackend(candidate), LiteRTBackend(reference)
    inputs = (fit(photo, *ours.size)[None] for photo in photos)
    return Accuracy.of((ours.run(x), theirs.run(x)) for x in inputs)


def finish(flatbuffer: bytes, entries: dict[str, str]) -> bytes:
    """The converted model with our tensor names (``input``, ``alpha``) and ``entries`` as TFLite metadata
    (named buffers, the format's own place for them). Buffers kept after the flatbuffer (by offset) are
    moved inside it: re-packing writes the flatbuffer alone."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    for buffer in model.buffers:  # data stored after the flatbuffer (the quantiser's files) would be cut off
        if buffer.offset and buffer.offset > 1 and buffer.size:
            buffer.data = np.frombuffer(flatbuffer, np.uint8, buffer.size, buffer.offset)
            buffer.offset = buffer.size = 0
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


def cached_tflite(model: nn.Module, config: WeightsConfig | None, size: tuple[int, int], precision: str) -> Path:
    """A .tflite of ``model`` at ``size`` in the cache, converted on first use (``modnet bench``).

    int8 is calibrated on the bundled photo only: enough for timing, which does not depend on
    the ranges; for a file to ship, calibrate on real photos (``modnet export --calibration``).
    """
    from ..export import fingerprint
    from ..inference.auto import check_input
    from ..weights import cache_dir

    config = config or WeightsConfig()
    height, width = size
    path = cache_dir() / "tflite" / f"{fingerprint(model)[:20]}_{height}x{width}_{precision}.tflite"
    if not path.is_file():
        calibration = [check_input(config)[0]] if precision == "int8" else []  # the bundled photo
        export_tflite(model, path, config, size, "nhwc", precision, calibration, log=lambda _: None)
    return path
