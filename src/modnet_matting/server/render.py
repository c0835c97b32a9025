"""From photo + alpha to the bytes a client asked for.

Compositing itself (foreground estimation, cut-out, background replacement)
is ``modnet_matting.compose``, shared with the CLI so both give the same
pixels; this module only maps request parameters to a ``compose.Background``
and encodes PNGs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np

from .. import compose
from ..io import alpha_to_uint, encode_png
from .errors import ApiError

WHITE = compose.Background("color", color=(255, 255, 255))


def choose_background(color: str | None, blur: bool, image: np.ndarray | None) -> compose.Background | None:
    """The request's background, or None; more than one source is ambiguous (422)."""
    sources = (("color", color is not None), ("blur", blur), ("background", image is not None))
    given = [name for name, chosen in sources if chosen]
    if len(given) > 1:
        raise ApiError(422, "ambiguous_background", f"choose one background, not {' and '.join(given)}")
    if image is not None:
        return compose.Background("image", image=image)
    if blur:
        return compose.Background("blur")
    if color is not None:
        try:
            return compose.Background("color", color=compose.parse_color(color))
        except ValueError as exc:
            raise ApiError(422, "bad_color", str(exc)) from None
    return None


def render(rgb: np.ndarray, alpha: np.ndarray, output: str, background: compose.Background | None,
           check: Callable[[], None] = lambda: None) -> bytes | dict:
    """PNG bytes for ``alpha``/``cutout``/``composite`` (white unless chosen); for ``json`` a dict of base64 PNGs.

    ``check`` runs between the steps (it raises when the request was abandoned, so no later step runs).
    """
    if output == "alpha":
        return encode_png(alpha_to_uint(alpha))
    foreground = compose.estimate_foreground(rgb, alpha)  # once, shared by cut-out and composite
    check()
    if output == "cutout":
        return encode_png(compose.cutout(rgb, alpha, foreground))
    if output == "composite":
        return encode_png(_composite(rgb, alpha, background or WHITE, foreground))
    height, width = alpha.shape
    return {
        "width": width,
        "height": height,
        "background": background.kind if background else "none",
        "alpha": _b64(encode_png(alpha_to_uint(alpha))),
        "cutout": _b64(_checked(check, encode_png(compose.cutout(rgb, alpha, foreground)))),
        "composite": _b64(_checked(check, encode_png(_composite(rgb, alpha, background, foreground))))
        if background else None,
    }


def _checked(check: Callable[[], None], value: bytes) -> bytes:
    check()
    return value


def _composite(
    rgb: np.ndarray, alpha: np.ndarray, background: compose.Background, foreground: np.ndarray
) -> np.ndarray:
    return compose.composite(rgb, alpha, background.render(rgb, alpha), foreground)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
