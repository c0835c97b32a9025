"""Deployment targets beyond the Python runtimes: Core ML (Apple), the browser (onnxruntime-web).

Each converter lives in an extra (``[coreml]``, ``[web]``) and is imported where it is
used; a missing one is a one-line error naming the extra (``need``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from ..weights import WeightsConfig

#: Input size (height, width) of the fixed-size exports (Core ML, TFLite) unless ``--size`` says
#: otherwise: a portrait frame, 3:4 near the short sides the bundled weights were tried at.
DEFAULT_SIZE = (448, 320)


def need(module: str, extra: str, what: str) -> None:
    """Import ``module`` or fail in one line that says which extra brings it."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{what} needs {module}: pip install 'modnet-matting[{extra}]'") from None


def check_size(size: tuple[int, int], config: WeightsConfig) -> None:
    """A fixed export size must be positive and a multiple of the network's divisor on both sides."""
    height, width = size
    divisor = config.preprocess.size_divisor
    if height <= 0 or width <= 0 or height % divisor or width % divisor:
        raise ValueError(f"--size must be a positive multiple of {divisor} on both sides, not {width}x{height}")


def folded_inference_module(model: nn.Module) -> nn.Module:
    """The inference path (``MatteOnly``) of the BatchNorm-folded network: what the converters trace."""
    from ..model import MatteOnly
    from ..model.fuse import fuse_modnet

    network = model.net if isinstance(model, MatteOnly) else model
    return MatteOnly(fuse_modnet(network, "where")).eval()
