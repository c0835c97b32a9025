"""Full-resolution edges: the network's matte enlarged by a fast guided filter instead of a plain resize.

The network sees a photo at short side 256-512, so a 24 MP photo's matte is enlarged 8-12x and its
edge is as soft as that. The fast guided filter (He and Sun, 2015) fits, at the network's
resolution, a local linear model ``alpha = a * grey + b`` in every window, enlarges only ``a`` and
``b`` (smooth by construction), and applies them to the photo's own grey levels: the edge then
follows the photo's edge at full resolution. The guide is the grey image (one channel keeps the
full-resolution pass at two multiply-adds a pixel), and that pass runs over row bands, so its
memory is a few bands of the photo's width whatever the photo's height.
"""

from __future__ import annotations

import cv2
import numpy as np

from .preprocess import resize

#: Window radius in network pixels and the regulariser (grey levels in [0, 1]): the setting that was best
#: or tied on whole-image MAD, band MAD and band Grad at 2.8x and 3.7x enlargement in the sweep of
#: ``benchmarks/refine_edges.py`` (docs/performance.md); a radius of 2 or more blurs the edge it should sharpen.
DEFAULT_RADIUS = 1
DEFAULT_EPS = 1e-3
#: Rows per band of the full-resolution pass (a 6000-pixel-wide band: about 12 MB per float32 array).
BAND_ROWS = 512
#: Enlargements below this gain nothing measurable from the filter (the matte is nearly at full size).
MIN_UPSCALE = 1.5


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def linear_coefficients(matte: np.ndarray, guide: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's window-averaged ``a`` and ``b`` at the matte's (low) resolution."""
    mean_i, mean_p = _box(guide, radius), _box(matte, radius)
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    cov_ip = _box(guide * matte, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box(a, radius), _box(b, radius)


def _enlarge_rows(low: np.ndarray, height: int, width: int, top: int, bottom: int) -> np.ndarray:
    """Rows ``top:bottom`` of ``low`` bilinearly enlarged to ``height x width`` (pixel centres aligned,
    as ``cv2.resize`` does), computed from the few low-resolution rows they need."""
    low_h, low_w = low.shape
    sy, sx = low_h / height, low_w / width
    first = max(0, int(np.floor((top + 0.5) * sy - 0.5)) - 1)
    last = min(low_h, int(np.ceil((bottom - 0.5) * sy - 0.5)) + 2)
    inverse = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, (top + 0.5) * sy - 0.5 - first]], np.float64)
    return cv2.warpAffine(low[first:last], inverse, (width, bottom - top),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def guided_upsample(matte: np.ndarray, rgb: np.ndarray, radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS,
                    band_rows: int = BAND_ROWS, small: np.ndarray | None = None) -> np.ndarray:
    """``matte`` (network size, float in [0, 1]) enlarged to ``rgb``'s size along ``rgb``'s edges.

    ``small`` is ``rgb`` already resized to the matte's size (the network's input), saving a resize.
    The grey levels' 1/255 is folded into ``a`` at low resolution, so the full-resolution pass reads
    the uint8 grey band as it is: one multiply-add a pixel, in place.
    """
    height, width = rgb.shape[:2]
    low_h, low_w = matte.shape
    if small is None or small.shape[:2] != matte.shape:
        small = resize(rgb, low_h, low_w)
    a, b = linear_coefficients(matte.astype(np.float32), _grey(small), radius, eps)
    a *= 1.0 / 255.0
    out = np.empty((height, width), np.float32)
    for top in range(0, height, band_rows):
        bottom = min(height, top + band_rows)
        band = out[top:bottom]
        np.multiply(_enlarge_rows(a, height, width, top, bottom), cv2.cvtColor(rgb[top:bottom], cv2.COLOR_RGB2GRAY),
                    out=band)
        band += _enlarge_rows(b, height, width, top, bottom)
    return np.clip(out, 0.0, 1.0, out=out)
