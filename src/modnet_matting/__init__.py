"""Trimap-free portrait matting with MODNet (Ke et al., AAAI 2022).

Importing the package is cheap: torch and the runtimes load only when a name that
needs them is first used, so ``modnet --help`` answers at once.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["CheckpointError", "WeightsNotFoundError", "__version__", "load_model"]


def load_model(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - thin re-export, see inference.load_model
    """Load weights into a ready-to-use predictor (see ``modnet_matting.inference.load_model``)."""
    from .inference import load_model as _load_model

    return _load_model(*args, **kwargs)


def __getattr__(name: str) -> object:
    if name in ("CheckpointError", "WeightsNotFoundError"):
        from . import weights

        return getattr(weights, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
