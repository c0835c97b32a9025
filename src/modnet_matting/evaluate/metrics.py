"""Matting, segmentation and temporal metrics with the field's conventions.

Conventions (stated again in every table the runner prints):

* mattes are float arrays with alpha in [0, 1]; uint8 and uint16 inputs are
  scaled by 255 and 65535 (see ``as_alpha``);
* ``region`` is a boolean mask of the pixels to score, or ``None`` for the whole
  image. The matting literature scores either the whole image (the MODNet paper's
  PPM-100 protocol for MSE and MAD) or the unknown band of a trimap
  (Composition-1k); ``unknown_band`` derives such a band from a reference;
* MSE and MAD are means over the region (0 for an empty region); SAD, Grad and
  Conn are sums over the region divided by 1000, as in the Composition-1k tables;
* IoU and the boundary F-score binarise at 0.5;
* temporal metrics take ``T x H x W`` stacks and are means over frame pairs.

Everything is vectorised over pixels; only Conn loops, over its ten thresholds.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage

SCALE = 1000.0  # SAD, Grad and Conn are reported divided by this


def as_alpha(matte: np.ndarray) -> np.ndarray:
    """Any matte array -> float64 alpha in [0, 1] (uint8 /255, uint16 /65535, floats clipped)."""
    arr = np.asarray(matte)
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 65535.0
    if arr.dtype == bool:
        return arr.astype(np.float64)
    return np.clip(arr.astype(np.float64), 0.0, 1.0)


def _pair(pred: np.ndarray, ref: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, r = as_alpha(pred), as_alpha(ref)
    if p.shape != r.shape:
        raise ValueError(f"prediction {p.shape} and reference {r.shape} differ in size")
    if region is None:
        mask = np.ones(p.shape, bool)
    else:
        mask = np.asarray(region, bool)
        if mask.shape != p.shape:
            raise ValueError(f"region {mask.shape} does not match the mattes {p.shape}")
    return p, r, mask


def mse(pred: np.ndarray, ref: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean squared alpha error over the region."""
    p, r, mask = _pair(pred, ref, region)
    count = int(mask.sum())
    return float(((p - r) ** 2)[mask].sum() / count) if count else 0.0


def mad(pred: np.ndarray, ref: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean absolute alpha difference over the region."""
    p, r, mask = _pair(pred, ref, region)
    count = int(mask.sum())
    return float(np.abs(p - r)[mask].sum() / count) if count else 0.0


def sad(pred: np.ndarray, ref: np.ndarray, region: np.ndarray | None = None) -> float:
    """Sum of absolute alpha differences over the region, / 1000."""
    p, r, mask = _pair(pred, ref, region)
    return float(np.abs(p - r)[mask].sum() / SCALE)


def gaussian_derivative_kernels(sigma: float = 1.4, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """The two 1-D factors of the Composition-1k gradient filter.

    The 2-D x-derivative filter is outer(gauss, dgauss) normalised to unit L2
    norm, with half-size ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma eps))) (9 taps at
    sigma 1.4). It is separable, so each factor is normalised on its own.
    """
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -u * gauss / sigma**2
    return gauss / np.linalg.norm(gauss), dgauss / np.linalg.norm(dgauss)


def gradient_magnitude(alpha: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """|grad alpha| by Gaussian-derivative filtering, replicated borders."""
    smooth, derive = gaussian_derivative_kernels(sigma)
    a = np.ascontiguousarray(alpha, np.float64)
    gx = cv2.sepFilter2D(a, cv2.CV_64F, derive, smooth, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(a, cv2.CV_64F, smooth, derive, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx**2 + gy**2)


def _minmax(alpha: np.ndarray) -> np.ndarray:
    low, high = float(alpha.min()), float(alpha.max())
    return (alpha - low) / (high - low) if high > low else alpha


def gradient_error(
    pred: np.ndarray, ref: np.ndarray, region: np.ndarray | None = None, sigma: float = 1.4, minmax: bool = True
) -> float:
    """Sum over the region of (|grad pred| - |grad ref|)^2, / 1000.

    ``minmax`` stretches each matte to [0, 1] first, as the Composition-1k
    reference code does (a no-op for mattes that already span 0..1).
    """
    p, r, mask = _pair(pred, ref, region)
    if minmax:
        p, r = _minmax(p), _minmax(r)
    diff = (gradient_magnitude(p, sigma) - gradient_magnitude(r, sigma)) ** 2
    return float(diff[mask].sum() / SCALE)


def _largest_component(binary: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(binary.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def connectivity_error(
    pred: np.ndarray, ref: np.ndarray, region: np.ndarray | None = None, step: float = 0.1, theta: float = 0.15
) -> float:
    """Connectivity error (Rhemann et al.), / 1000.

    For thresholds step, 2 step, ..., 1 the largest 4-connected component of
    (pred >= t) & (ref >= t) is the "source"; a pixel's level is the last
    threshold before it drops out of the source (1 if it never does). Pixels whose
    alpha exceeds that level by at least ``theta`` count as disconnected by
    phi = 1 - (alpha - level). Summed |phi_pred - phi_ref| over the region.
    """
    p, r, mask = _pair(pred, ref, region)
    steps = int(round(1.0 / step))
    level = np.ones(p.shape)
    dropped = np.zeros(p.shape, bool)
    for k in range(1, steps + 1):
        threshold = k / steps
        source = _largest_component((p >= threshold) & (r >= threshold))
        newly = ~dropped & ~source
        level[newly] = (k - 1) / steps
        dropped |= newly
    phi_p = 1.0 - np.where(p - level >= theta, p - level, 0.0)
    phi_r = 1.0 - np.where(r - level >= theta, r - level, 0.0)
    return float(np.abs(phi_p - phi_r)[mask].sum() / SCALE)


# ----------------------------------------------------------------- regions


def default_band_radius(height: int, width: int) -> int:
    """Half-width of the derived unknown band: 1.5% of the mean side, at least 2 px."""
    return max(2, int(round(0.015 * (height + width) / 2)))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def make_trimap(ref: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Trimap (0 background, 0.5 unknown, 1 foreground) derived from a reference matte.

    A pixel is known only if every pixel within ``radius`` is fully opaque (or
    fully transparent) in the reference; everything else is the unknown band.
    """
    r = as_alpha(ref)
    radius = default_band_radius(*r.shape) if radius is None else radius
    eps = 0.5 / 255.0
    kernel = _disk(radius)
    fg = cv2.erode((r >= 1.0 - eps).astype(np.uint8), kernel).astype(bool)
    bg = cv2.erode((r <= eps).astype(np.uint8), kernel).astype(bool)
    trimap = np.full(r.shape, 0.5)
    trimap[fg] = 1.0
    trimap[bg] = 0.0
    return trimap


def unknown_band(ref: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Boolean mask of the unknown band of ``make_trimap(ref, radius)``."""
    return make_trimap(ref, radius) == 0.5


def trimap_region(trimap: np.ndarray) -> np.ndarray:
    """Unknown pixels of a given trimap (128 in uint8 trimaps, 0.5 in float ones)."""
    arr = np.asarray(trimap)
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype == np.uint8:
        return (arr > 0) & (arr < 255)
    return (arr > 0) & (arr < 1)


# ------------------------------------------------------------ segmentation


def iou(pred: np.ndarray, ref: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of the binarised masks (1 when both are empty)."""
    p, r, _ = _pair(pred, ref, None)
    pb, rb = p >= threshold, r >= threshold
    union = int((pb | rb).sum())
    return float((pb & rb).sum() / union) if union else 1.0


def false_foreground(pred: np.ndarray, ref: np.ndarray, threshold: float = 0.5) -> float:
    """Share of the image predicted as person (alpha > threshold) where the reference is background (0).

    The "is this a person?" failure in one number: a kept background object adds its
    area, whatever happens at the person's edge.
    """
    p, r, _ = _pair(pred, ref, None)
    return float(np.logical_and(p > threshold, r <= 0.0).mean())


def _contour(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a background 8-neighbour; the image frame is not a contour."""
    return mask & ~ndimage.binary_erosion(mask, np.ones((3, 3), bool), border_value=1)


def boundary_tolerance(height: int, width: int, fraction: float = 0.008) -> int:
    """Matching distance for the boundary F-score: 0.8% of the diagonal (DAVIS's default)."""
    return max(1, math.ceil(fraction * math.hypot(height, width)))


def boundary_f(pred: np.ndarray, ref: np.ndarray, threshold: float = 0.5, tolerance: int | None = None) -> float:
    """Boundary F-score: contour pixels matched within ``tolerance`` px (Euclidean).

    Precision is the share of predicted contour pixels near a reference contour,
    recall the reverse; F = 2PR / (P + R). 1 when neither mask has a contour.
    """
    p, r, _ = _pair(pred, ref, None)
    tolerance = boundary_tolerance(*p.shape) if tolerance is None else tolerance
    pc, rc = _contour(p >= threshold), _contour(r >= threshold)
    if not pc.any() and not rc.any():
        return 1.0
    if not pc.any() or not rc.any():
        return 0.0
    precision = float((ndimage.distance_transform_edt(~rc)[pc] <= tolerance).mean())
    recall = float((ndimage.distance_transform_edt(~pc)[rc] <= tolerance).mean())
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# ---------------------------------------------------------------- temporal


def _stack(frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """``T x H x W`` stack (or list of frames) -> float64 alpha in [0, 1]."""
    arr = np.stack([as_alpha(frame) for frame in frames])
    if arr.ndim != 3 or arr.shape[0] < 2:
        raise ValueError(f"expected at least two frames as T x H x W, got shape {arr.shape}")
    return arr


def dtssd(preds: np.ndarray | list[np.ndarray], refs: np.ndarray | list[np.ndarray]) -> float:
    """Temporal gradient error (Erofeev et al. 2015).

    Per consecutive pair: sqrt(mean over pixels of ((p_t - p_t-1) - (g_t - g_t-1))^2);
    averaged over pairs; alpha in [0, 1], no extra scale.
    """
    p, g = _stack(preds), _stack(refs)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and reference {g.shape} stacks differ")
    diff = np.diff(p, axis=0) - np.diff(g, axis=0)
    return float(np.sqrt((diff**2).mean(axis=(1, 2))).mean())


def reference_flow(ref_t: np.ndarray, ref_next: np.ndarray) -> np.ndarray:
    """Farneback optical flow from one reference matte to the next (H x W x 2, pixels)."""
    a = (as_alpha(ref_t) * 255.0 + 0.5).astype(np.uint8)
    b = (as_alpha(ref_next) * 255.0 + 0.5).astype(np.uint8)
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 10, 2, 7, 1.5, 0)


def warp_back(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``frame`` (time t+1) at p + flow(p): its content moved back to time t."""
    h, w = frame.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        frame.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float64)


def messddt(preds: np.ndarray | list[np.ndarray], refs: np.ndarray | list[np.ndarray]) -> float:
    """Motion-compensated temporal error MESSDdt (Erofeev et al. 2015).

    Motion comes from the reference mattes (``reference_flow``). Per pair: mean
    over pixels of |(p_t - W p_t+1)^2 - (g_t - W g_t+1)^2|, with W warping frame
    t+1 back along the flow; averaged over pairs; no extra scale.
    """
    p, g = _stack(preds), _stack(refs)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and reference {g.shape} stacks differ")
    errors = []
    for t in range(len(g) - 1):
        flow = reference_flow(g[t], g[t + 1])
        pred_err = (p[t] - warp_back(p[t + 1], flow)) ** 2
        ref_err = (g[t] - warp_back(g[t + 1], flow)) ** 2
        errors.append(np.abs(pred_err - ref_err).mean())
    return float(np.mean(errors))


def flicker_counts(frames: np.ndarray | list[np.ndarray], xi: float = 0.1) -> np.ndarray:
    """Per middle frame, the pixels the paper's OFD would call flicker (no ground truth needed).

    A pixel flickers at t when |a[t-1] - a[t+1]| <= xi while a[t] differs from
    both neighbours by more than xi. Returns T-2 counts (empty below 3 frames).
    """
    a = _stack(frames)
    prev, cur, nxt = a[:-2], a[1:-1], a[2:]
    flicker = (np.abs(prev - nxt) <= xi) & (np.abs(cur - prev) > xi) & (np.abs(cur - nxt) > xi)
    return flicker.sum(axis=(1, 2)).astype(np.int64)


def flicker_rate(frames: np.ndarray | list[np.ndarray], xi: float = 0.1) -> float:
    """Flickering pixels as a fraction of all middle-frame pixels."""
    a = _stack(frames)
    if len(a) < 3:
        return 0.0
    return float(flicker_counts(a, xi).sum() / (a[0].size * (len(a) - 2)))
