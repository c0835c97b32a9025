"""The runtimes that run the network: eager PyTorch, ONNX Runtime, OpenVINO.

Each module imports only its own runtime, inside the constructor, so a missing
optional runtime costs nothing until it is asked for. A backend is any object
with ``name``, ``precision`` and ``run(batch)``: ``N x 3 x H x W`` float32 in,
``N x 1 x H x W`` float32 alpha out (docs/architecture.md says how to add one).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    """Runs the network on a normalised ``N x 3 x H x W`` float32 batch."""

    name: str
    precision: str

    def run(self, batch: np.ndarray) -> np.ndarray:  # returns N x 1 x H x W float32
        ...
