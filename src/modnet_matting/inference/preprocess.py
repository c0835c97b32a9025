"""What the network sees: the size rule, resizing and normalisation (numpy and OpenCV only).

Every runtime gets the same input, so preprocessing lives apart from the backends:
the weights' ``Preprocess`` (the authors' reference-size rule, a multiple of 32,
mean/std to [-1, 1]) decides the size, and a pixel cap keeps work bounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from ..weights import Preprocess

#: Images whose network input would exceed this many pixels are scaled down
#: (aspect kept) so memory stays bounded whatever the photo's size.
DEFAULT_MAX_PIXELS = 2048 * 2048


def network_size(height: int, width: int, pre: Preprocess, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Network input size for an image, by the authors' reference-size rule.

    "reference": sizes with short side <= ref <= long side are kept, others have
    their short side scaled to ref. "short_side": always scale the short side.
    The area is then scaled down to ``max_pixels`` and the sides floored to multiples
    of ``size_divisor``. A side cannot go below one divisor, so for extreme aspect
    ratios (a 8x3,000,000 strip) the long side is shortened instead of the short side
    being rounded back up: the network never runs above ``max_pixels``, at the price
    of squeezing such an image (its matte is resized back to the image anyway).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image has no pixels ({height}x{width})")
    ref, div = pre.reference_size, pre.size_divisor
    rescale = pre.resize_mode == "short_side" or max(height, width) < ref or min(height, width) > ref
    if rescale:
        if width >= height:
            out_h, out_w = ref, int(width / height * ref)
        else:
            out_h, out_w = int(height / width * ref), ref
    else:
        out_h, out_w = height, width
    if out_h * out_w > max_pixels:
        shrink = (max_pixels / (out_h * out_w)) ** 0.5
        out_h, out_w = int(out_h * shrink), int(out_w * shrink)
    out_h, out_w = max(div, out_h - out_h % div), max(div, out_w - out_w % div)
    longest = max(div, max_pixels // min(out_h, out_w) // div * div)  # the other side's room under the cap
    return (min(out_h, longest), out_w) if out_h > out_w else (out_h, min(out_w, longest))


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area interpolation when shrinking (the authors' choice), bilinear when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def normalise(rgb: np.ndarray, pre: Preprocess) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32 normalised with the config's mean and std."""
    mean = np.asarray(pre.mean, np.float32) * 255.0
    std = np.asarray(pre.std, np.float32) * 255.0
    return ((rgb.astype(np.float32) - mean) / std).transpose(2, 0, 1)


def network_input(rgb: np.ndarray, pre: Preprocess, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 at any size -> the normalised 3 x H x W input at the network size."""
    height, width = network_size(rgb.shape[0], rgb.shape[1], pre, max_pixels)
    return normalise(resize(rgb, height, width), pre)
