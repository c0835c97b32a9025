"""Soft alpha labels from binary person masks.

Binary masks can teach the semantic objective but not the detail and fusion
ones. A band of unknown pixels is opened around the mask edge by erosion and
dilation, and a classical solver fills it from the image colours:
closed-form matting (Levin et al., through pymatting) by default, or an
edge-aware guided filter of the mask where speed matters more than accuracy.
"""

from __future__ import annotations

import cv2
import numpy as np


def band_trimap(mask: np.ndarray, band: int) -> np.ndarray:
    """0 / 0.5 / 1 trimap with an unknown band of ``band`` pixels each side of the edge."""
    binary = (mask > 127 if mask.dtype == np.uint8 else mask > 0.5).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    core = cv2.erode(binary, kernel)
    support = cv2.dilate(binary, kernel)
    trimap = np.full(binary.shape, 0.5, np.float64)
    trimap[support == 0] = 0.0
    trimap[core == 1] = 1.0
    return trimap


def default_band(shape: tuple[int, ...]) -> int:
    """Unknown band half-width for a mask: 1.5% of the short side, at least 3 px."""
    return max(3, round(min(shape[:2]) * 0.015))


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float = 1e-3) -> np.ndarray:
    """He et al.'s grey-guide guided filter with box means (fast, edge-aware feathering)."""
    size = (2 * radius + 1, 2 * radius + 1)
    mean = lambda x: cv2.blur(x, size, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mean_i, mean_p = mean(guide), mean(src)
    cov = mean(guide * src) - mean_i * mean_p
    var = mean(guide * guide) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return mean(a) * guide + mean(b)


def soft_alpha(image: np.ndarray, mask: np.ndarray, band: int | None = None, method: str = "closed_form") -> np.ndarray:
    """Soft alpha (float32 in [0, 1]) for an RGB uint8 image and its binary mask.

    ``band`` defaults to 1.5% of the short side (at least 3 px). Pixels outside
    the band keep the mask's value, so a solver can only refine the edge.
    """
    band = band or default_band(mask.shape)
    trimap = band_trimap(mask, band)
    if not (trimap == 0.5).any() or not (trimap == 1).any():
        return trimap.astype(np.float32).clip(0, 1) if (trimap != 0.5).all() else (mask > 127).astype(np.float32)
    rgb = image.astype(np.float64) / 255.0
    if method == "closed_form":
        from pymatting import estimate_alpha_cf

        alpha = estimate_alpha_cf(rgb, trimap)
    elif method == "guided":
        # Feather the mask itself (not the eroded core, which would pull the edge inwards by ``band``);
        # a radius of half the band lets the filter move the edge to the nearest image edge.
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
        binary = (mask > 127 if mask.dtype == np.uint8 else mask > 0.5).astype(np.float64)
        alpha = guided_filter(grey, binary, max(1, band // 2))
    else:
        raise ValueError(f"unknown label method {method!r}; use closed_form or guided")
    alpha = np.where(trimap == 0.5, alpha, trimap)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def foreground_colours(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Background-free foreground colours (uint8 RGB) for compositing on new backgrounds."""
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(image.astype(np.float64) / 255.0, alpha.astype(np.float64))
    return (np.clip(fg, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
