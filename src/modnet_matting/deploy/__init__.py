"""Deployment targets beyond the Python runtimes: Core ML (Apple), the browser (onnxruntime-web).

Each converter lives in an extra (``[coreml]``, ``[web]``) and is imported where it is
used; a missing one is a one-line error naming the extra (``need``).
"""

from __future__ import annotations

import importlib


def need(module: str, extra: str, what: str) -> None:
    """Import ``module`` or fail in one line that says which extra brings it."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{what} needs {module}: pip install 'modnet-matting[{extra}]'") from None
