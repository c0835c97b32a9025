"""Pretrained MobileNetV2 encoders from TensorFlow Lite files, for MODNet's backbone.

TensorFlow's own MobileNetV2 releases (the ImageNet classifier, DeepLabV3 on PASCAL
VOC) reach us as uint8 ``.tflite`` files with batch norm folded into each
convolution: a weight ``W' = W * gamma / sigma`` and a bias ``b``. Our backbone has
bias-free convolutions followed by batch norm, so a folded layer becomes
``conv(W')`` + a batch norm that adds ``b``: with statistics (0, 1) that is exact in
eval mode only, because train-mode batch norm divides every channel by its batch
statistics and erases the folded scale and offset. ``recalibrate_batchnorm`` gives
each such batch norm the real per-channel mean ``m`` and std ``s`` of its
convolution's output over photos, ``weight = sqrt(s^2 + eps)`` and ``bias = m + b``: still
the same function in eval mode, and now one that train mode keeps.

The file is read with ai-edge-litert's interpreter (the ``train`` extra), which
exposes each op's weight and bias tensors with their quantisation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..model import MobileNetV2Backbone
from ..weights import CheckpointError

_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
_PARTS = {"expand": 0, "depthwise": 1, "project": 2}
_SLIM_NAME = re.compile(r"^MobilenetV2/(Conv|Conv_1|expanded_conv(?:_(\d+))?)/(?:(expand|depthwise|project)/)?")


@dataclass
class FoldedConv:
    """One dequantised convolution: weight in PyTorch layout (OIHW) and its folded bias."""

    name: str
    weight: torch.Tensor
    bias: torch.Tensor


@dataclass
class FoldedBackbone:
    """Folded convolutions keyed by our module path (``features.3.conv.0``), and the file's head."""

    source: str
    convs: dict[str, FoldedConv] = field(default_factory=dict)
    head: list[FoldedConv] = field(default_factory=list)


def _interpreter(path: str | os.PathLike):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise CheckpointError("reading .tflite files needs ai-edge-litert: "
                              "pip install 'modnet-matting[train]'") from None
    try:
        return Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable TensorFlow Lite model ({str(exc).splitlines()[0]})") from None


def _dequantise(values: np.ndarray, details: dict) -> np.ndarray:
    """(q - zero_point) * scale, per tensor or per channel along the quantised dimension."""
    if not np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float32)
    quant = details["quantization_parameters"]
    scales, zeros = quant["scales"].astype(np.float64), quant["zero_points"].astype(np.float64)
    if scales.size == 0:
        raise CheckpointError(f"tensor {details['name']!r} is an integer tensor without quantisation parameters")
    shape = [1] * values.ndim
    if scales.size > 1:
        shape[quant["quantized_dimension"]] = scales.size
    return ((values.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def _to_torch_layout(weight: np.ndarray, depthwise: bool) -> torch.Tensor:
    """TFLite convolution OHWI -> OIHW; depthwise 1HWO -> O1HW."""
    order = (3, 0, 1, 2) if depthwise else (0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(weight.transpose(order)))


def _slim_position(name: str) -> tuple[int, int] | None:
    """(features index, part) from a TF-Slim tensor name, or None for a non-backbone layer."""
    match = _SLIM_NAME.match(name)
    if not match:
        return None
    block, number, part = match.groups()
    if block == "Conv":
        return 0, 0
    if block == "Conv_1":
        return 18, 0
    index = 1 if number is None else int(number) + 1
    return index, _PARTS[part]


def _our_convs(backbone: MobileNetV2Backbone) -> dict[int, list[str]]:
    """Per features index, the names of its convolutions in forward order."""
    out: dict[int, list[str]] = {}
    for name, module in backbone.model.named_modules():
        if isinstance(module, nn.Conv2d):
            out.setdefault(int(name.split(".")[1]), []).append(name)
    return out


def read_tflite_backbone(path: str | os.PathLike) -> FoldedBackbone:
    """Every MobileNetV2 convolution of a TF-Slim ``.tflite`` model, mapped onto our backbone.

    Raises CheckpointError (one line) when the file is not such a model or a layer's
    shape does not fit.
    """
    interpreter = _interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    found: dict[tuple[int, int], FoldedConv] = {}
    result = FoldedBackbone(source=Path(path).name)
    for op in interpreter._get_ops_details():
        if op["op_name"] not in _CONV_OPS or len(op["inputs"]) < 3:
            continue
        w_details, b_details = tensors[op["inputs"][1]], tensors[op["inputs"][2]]
        name = w_details["name"].split(";")[0]
        depthwise = op["op_name"] == "DEPTHWISE_CONV_2D"
        weight = _to_torch_layout(_dequantise(interpreter.get_tensor(op["inputs"][1]), w_details), depthwise)
        bias = torch.from_numpy(_dequantise(interpreter.get_tensor(op["inputs"][2]), b_details))
        conv = FoldedConv(name, weight, bias)
        position = _slim_position(name)
        if position is None:
            result.head.append(conv)
        else:
            found[position] = conv
    result.convs = _place(found, path)
    return result


def _place(found: dict[tuple[int, int], FoldedConv], path: str | os.PathLike) -> dict[str, FoldedConv]:
    """Put each (block, part) convolution at our module name, checking the shapes."""
    reference = MobileNetV2Backbone()
    modules = dict(reference.model.named_modules())
    placed: dict[str, FoldedConv] = {}
    for index, names in _our_convs(reference).items():
        parts = sorted(part for block, part in found if block == index)
        if not parts:
            continue
        if len(parts) != len(names):
            raise CheckpointError(f"{path}: block {index} has {len(parts)} convolutions, MobileNetV2 has {len(names)}")
        for part, name in zip(parts, names):
            conv = found[(index, part)]
            expected = tuple(modules[name].weight.shape)
            if tuple(conv.weight.shape) != expected:
                raise CheckpointError(f"{path}: {conv.name} is {tuple(conv.weight.shape)}, features{name[8:]} "
                                      f"needs {expected}")
            placed[name] = conv
    if not placed:
        raise CheckpointError(f"{path}: no MobileNetV2 (TF-Slim) convolutions in this model")
    return placed


def batchnorm_of(conv_name: str) -> str:
    """The batch norm that follows a convolution: the next index of the same Sequential."""
    head, _, index = conv_name.rpartition(".")
    return f"{head}.{int(index) + 1}"


def folded_state(folded: FoldedBackbone) -> dict[str, torch.Tensor]:
    """``features.*`` tensors: each convolution with an identity batch norm plus its folded bias."""
    state: dict[str, torch.Tensor] = {}
    for name, conv in folded.convs.items():
        bn = batchnorm_of(name)
        channels = conv.weight.shape[0]
        state[f"{name}.weight"] = conv.weight
        state[f"{bn}.weight"] = torch.ones(channels)
        state[f"{bn}.bias"] = conv.bias.clone()
        state[f"{bn}.running_mean"] = torch.zeros(channels)
        state[f"{bn}.running_var"] = torch.ones(channels)
    return state


def merge_folded(files: Sequence[FoldedBackbone]) -> FoldedBackbone:
    """The first file that holds a layer gives it (DeepLab lacks ``features.18``: a classifier fills it)."""
    merged = FoldedBackbone(source=" + ".join(f.source for f in files))
    for folded in files:
        for name, conv in folded.convs.items():
            merged.convs.setdefault(name, conv)
        merged.head = merged.head or folded.head
    return merged


def load_folded(backbone: MobileNetV2Backbone, folded: FoldedBackbone) -> None:
    """Set the folded layers with identity batch norm; every backbone convolution must be covered."""
    missing = [name for names in _our_convs(backbone).values() for name in names if name not in folded.convs]
    if missing:
        raise CheckpointError(f"{folded.source}: no weights for {len(missing)} backbone convolutions, e.g. "
                              f"features{missing[0][8:]} (add a second file that has them, e.g. the classifier)")
    backbone.model.load_state_dict(folded_state(folded), strict=False)


@torch.no_grad()
def recalibrate_batchnorm(backbone: MobileNetV2Backbone, folded: FoldedBackbone, images: Iterable[torch.Tensor]) -> int:
    """Give the folded layers' batch norms the statistics of photos; returns the images seen.

    ``backbone`` must hold ``load_folded(folded)``. Each image is a [1, 3, H, W] tensor in
    [-1, 1]. The network keeps computing the same function in eval mode (to float
    rounding); train mode now normalises by statistics close to the real ones.
    """
    modules = dict(backbone.model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def record(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            values = output.detach().double().transpose(0, 1).flatten(1)
            sums[name] = sums.get(name, 0) + values.sum(1)
            squares[name] = squares.get(name, 0) + (values * values).sum(1)
            counts[name] = counts.get(name, 0) + values.shape[1]
        return hook

    handles = [modules[name].register_forward_hook(record(name)) for name in folded.convs]
    was_training = backbone.training
    backbone.eval()
    seen = 0
    try:
        for image in images:
            backbone(image.float())
            seen += 1
    finally:
        for handle in handles:
            handle.remove()
        backbone.train(was_training)
    if not seen:
        raise ValueError("batch-norm recalibration needs at least one image")
    for name, conv in folded.convs.items():
        mean = sums[name] / counts[name]
        std = (squares[name] / counts[name] - mean * mean).clamp_min(0.0).sqrt()
        bn: nn.BatchNorm2d = modules[batchnorm_of(name)]
        # eval: (y - m) / sqrt(s^2 + eps) * sqrt(s^2 + eps) + m + b == y + b, also for dead channels (s = 0)
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_((std * std).float())
        bn.weight.copy_((std * std + bn.eps).sqrt().float())
        bn.bias.copy_(mean.float() + conv.bias)
    return seen


def calibration_tensors(images: Iterable[np.ndarray], short_side: int = 256) -> Iterable[torch.Tensor]:
    """RGB uint8 photos as [1, 3, H, W] network inputs at ``short_side`` (sides multiples of 32)."""
    from ..inference.preprocess import network_size, resize
    from ..weights import Preprocess

    pre = Preprocess(reference_size=short_side, resize_mode="short_side")
    for image in images:
        h, w = network_size(*image.shape[:2], pre)
        yield torch.from_numpy(resize(image, h, w)).permute(2, 0, 1)[None].float().div(127.5).sub(1)


def import_backbone(
    backbone: MobileNetV2Backbone, paths: Sequence[str | os.PathLike], images: Iterable[np.ndarray] | None
) -> str:
    """Load ``.tflite`` encoders into ``backbone`` and recalibrate their batch norms on ``images``.

    Returns a one-line description for the log. Without images, batch norm stays an
    identity plus bias (exact for inference, not for training in train mode).
    """
    folded = merge_folded([read_tflite_backbone(p) for p in paths])
    load_folded(backbone, folded)
    if images is None:
        return f"{len(folded.convs)} convolutions from {folded.source} (batch norm not recalibrated)"
    seen = recalibrate_batchnorm(backbone, folded, calibration_tensors(images))
    return f"{len(folded.convs)} convolutions from {folded.source}, batch norm recalibrated on {seen} photos"
