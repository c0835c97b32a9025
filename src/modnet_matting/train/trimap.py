"""Trimaps from ground-truth mattes, by the authors' rule (see docs / spec)."""

from __future__ import annotations

import cv2
import numpy as np

FOREGROUND_LEVEL = 0.9


def _square(size: int) -> np.ndarray:
    return np.ones((max(1, size), max(1, size)), np.uint8)


def trimap_from_matte(
    matte: np.ndarray,
    rng: np.random.Generator | None = None,
    band: tuple[int, int] | None = None,
) -> np.ndarray:
    """0 / 0.5 / 1 trimap: unknown where the dilated support differs from the eroded core.

    ``band`` gives the (dilation, erosion) kernel sizes; by default both are drawn
    from [10, 20] * (short side // 256) pixels, as the authors' training did.
    """
    if band is None:
        rng = rng or np.random.default_rng()
        unit = max(1, min(matte.shape[:2]) // 256)
        band = (int(rng.integers(10, 21)) * unit, int(rng.integers(10, 21)) * unit)
    support = cv2.dilate((matte > 0).astype(np.uint8), _square(band[0]))
    core = cv2.erode((matte >= FOREGROUND_LEVEL).astype(np.uint8), _square(band[1]))
    trimap = np.full(matte.shape[:2], 0.5, np.float32)
    trimap[support == 0] = 0.0
    trimap[core == 1] = 1.0
    return trimap
