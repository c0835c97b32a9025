"""Tiny .tflite graphs built with the format's own schema, so LiteRT tests need no converter.

``pixel_graph`` is one 1x1 convolution from RGB to one channel and a sigmoid: the same
contract as a MODNet export (``input`` an RGB image at a fixed size, ``alpha`` in [0, 1]),
with an output a test can compute by hand (``expected_alpha``). ``quantized=True`` gives it
int8 input and output tensors around the float graph (QUANTIZE / DEQUANTIZE), the I/O of a
fully int8 export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WEIGHTS = np.array([0.9, -0.4, 0.6], np.float32)
BIAS = 0.2
INPUT_QUANT, OUTPUT_QUANT = (1 / 127.0, 0), (1 / 256.0, -128)  # (scale, zero point)


def expected_alpha(image_chw: np.ndarray) -> np.ndarray:
    """What the graph computes for a ``3 x H x W`` float input: ``1 x H x W``."""
    return 1.0 / (1.0 + np.exp(-(np.tensordot(WEIGHTS, image_chw, axes=1) + BIAS)))[None]


def pixel_graph(path: Path, height: int, width: int, layout: str = "nhwc", quantized: bool = False,
                metadata: dict[str, str] | None = None) -> Path:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    if layout != "nhwc":
        raise ValueError("the test graph is NHWC (TFLite's convolution layout)")
    buffers = [s.BufferT()]  # buffer 0: empty, by the format's convention

    def buffer(data: bytes | None = None) -> int:
        b = s.BufferT()
        if data is not None:
            b.data = list(data)
        buffers.append(b)
        return len(buffers) - 1

    tensors = []

    def tensor(name: str, shape: list[int], kind: int, data: bytes | None = None,
               quant: tuple[float, int] | None = None) -> int:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), shape, kind, buffer(data)
        if quant is not None:
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = [quant[0]], [quant[1]]
            t.quantization = q
        tensors.append(t)
        return len(tensors) - 1

    f32, i8 = s.TensorType.FLOAT32, s.TensorType.INT8
    image, alpha = [1, height, width, 3], [1, height, width, 1]
    x = tensor("input", image, i8 if quantized else f32, quant=INPUT_QUANT if quantized else None)
    x_float = tensor("input_float", image, f32) if quantized else x
    w = tensor("weights", [1, 1, 1, 3], f32, WEIGHTS.tobytes())
    b = tensor("bias", [1], f32, np.array([BIAS], np.float32).tobytes())
    logits = tensor("logits", alpha, f32)
    y_float = tensor("alpha_float" if quantized else "alpha", alpha, f32)
    y = tensor("alpha", alpha, i8, quant=OUTPUT_QUANT) if quantized else y_float

    codes, operators = [], []

    def op(builtin: int, inputs: list[int], outputs: list[int], options: object = None, kind: int = 0) -> None:
        if builtin not in [c.builtinCode for c in codes]:
            code = s.OperatorCodeT()
            code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
            codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex = [c.builtinCode for c in codes].index(builtin)
        o.inputs, o.outputs = inputs, outputs
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = kind, options
        operators.append(o)

    if quantized:
        op(s.BuiltinOperator.DEQUANTIZE, [x], [x_float])
    conv = s.Conv2DOptionsT()
    conv.padding, conv.strideH, conv.strideW = s.Padding.SAME, 1, 1
    conv.dilationHFactor = conv.dilationWFactor = 1
    op(s.BuiltinOperator.CONV_2D, [x_float, w, b], [logits], conv, s.BuiltinOptions.Conv2DOptions)
    op(s.BuiltinOperator.LOGISTIC, [logits], [y_float])
    if quantized:
        op(s.BuiltinOperator.QUANTIZE, [y_float], [y])

    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [x], [y], operators
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, codes, [graph], buffers
    model.metadata = []
    for name, text in (metadata or {}).items():
        entry = s.MetadataT()
        entry.name, entry.buffer = name, buffer(text.encode())
        model.metadata.append(entry)
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def our_metadata(config_json: str, precision: str) -> dict[str, str]:
    return {"modnet_config": config_json, "modnet_io": json.dumps({"precision": precision})}
