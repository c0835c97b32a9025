"""Trimap-free portrait matting with MODNet (Ke et al., AAAI 2022)."""

from .weights import CheckpointError, WeightsNotFoundError

__version__ = "0.1.0"

__all__ = ["CheckpointError", "WeightsNotFoundError", "__version__", "load_model"]


def load_model(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - thin re-export, see inference.load_model
    """Load weights into a ready-to-use predictor (see ``modnet_matting.inference.load_model``)."""
    from .inference import load_model as _load_model

    return _load_model(*args, **kwargs)
