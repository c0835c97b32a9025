"""Core ML export: an ``.mlpackage`` (ML program) for iOS/macOS, image in, alpha out, fp16.

The input is a Core ML image (``image``, RGB, the fixed size chosen at export), so
apps hand it a ``CVPixelBuffer`` and Core ML does the normalisation built into the
model (x / 127.5 - 1, the same as the weights' mean/std of 0.5). The output
``alpha`` is a float array ``[1, 1, H, W]`` in [0, 1]. The network is the
BatchNorm-folded one (``model.fuse``) and computes in float16, Core ML's native
precision on the Neural Engine and GPU.

Core ML runs only on Apple systems, so the tests here check the file's spec
(inputs, outputs, shapes, normalisation, precision); docs/deploy.md gives the
macOS one-liner that checks prediction parity.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from ..io import scratch_folder
from ..weights import WeightsConfig
from . import DEFAULT_SIZE, check_size, folded_inference_module, need

INPUT_NAME = "image"
OUTPUT_NAME = "alpha"
CONFIG_KEY = "modnet_config"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """coremltools prints progress bars, untested-version notes and missing-native-library lines on Linux."""
    loggers = [logging.getLogger(name) for name in ("coremltools", "root")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(
            io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def export_coreml(model: nn.Module, path: str | os.PathLike[str], config: WeightsConfig | None = None,
                  size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    """Write ``path`` (.mlpackage) for input ``size`` (height, width, multiples of 32); returns the path.

    Written to a temporary folder beside the target and renamed into place, so an
    interrupted export leaves no half package under the requested name.
    """
    need("coremltools", "coreml", "Core ML export")
    config = config or WeightsConfig()
    target = Path(path)
    if target.suffix.lower() != ".mlpackage":
        raise ValueError(f"a Core ML model is written as NAME.mlpackage, not {target.name}")
    check_size(size, config)
    mlmodel = _convert(model, config, *size)
    scratch = scratch_folder(target)
    try:
        with _quiet():
            mlmodel.save(str(scratch / target.name))
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch / target.name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _convert(model: nn.Module, config: WeightsConfig, height: int, width: int):  # noqa: ANN202 - ct.models.MLModel
    import coremltools as ct
    import torch

    pre = config.preprocess
    if len(set(pre.mean)) != 1 or len(set(pre.std)) != 1:
        raise ValueError("a Core ML image input normalises all channels alike; these weights' mean/std differ")
    scale = 1.0 / (255.0 * pre.std[0])  # (x / 255 - mean) / std = x * scale + bias
    bias = -pre.mean[0] / pre.std[0]
    module = folded_inference_module(model)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(module, torch.zeros(1, 3, height, width))
        image = ct.ImageType(name=INPUT_NAME, shape=(1, 3, height, width), scale=scale, bias=[bias] * 3,
                             color_layout=ct.colorlayout.RGB)
        mlmodel = ct.convert(traced, inputs=[image], outputs=[ct.TensorType(name=OUTPUT_NAME)],
                             convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                             minimum_deployment_target=ct.target.iOS15)
    mlmodel.short_description = "MODNet portrait matting: RGB image in, alpha matte out"
    mlmodel.input_description[INPUT_NAME] = f"RGB image, {width}x{height} (resize the photo to this size)"
    mlmodel.output_description[OUTPUT_NAME] = f"alpha matte [1, 1, {height}, {width}] in [0, 1]"
    mlmodel.user_defined_metadata[CONFIG_KEY] = config.to_json()
    card = config.card or {}
    mlmodel.license = str(card.get("licence", ""))
    mlmodel.author = str(card.get("source", "modnet-matting"))
    return mlmodel
