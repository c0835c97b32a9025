"""Metrics: hand-computed values on tiny mattes, a naive loop reference, and mmeval when installed."""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest

from modnet_matting.evaluate import metrics as M

PRED = np.array([[0.0, 0.5], [1.0, 1.0]])
REF = np.array([[0.0, 1.0], [1.0, 0.0]])
RIGHT_COLUMN = np.array([[False, True], [False, True]])


def test_mse_mad_sad_by_hand() -> None:
    # differences 0, 0.5, 0, 1
    assert M.mad(PRED, REF) == pytest.approx(1.5 / 4)
    assert M.mse(PRED, REF) == pytest.approx((0.25 + 1.0) / 4)
    assert M.sad(PRED, REF) == pytest.approx(1.5 / 1000)
    assert M.mad(PRED, REF, RIGHT_COLUMN) == pytest.approx(0.75)
    assert M.mse(PRED, REF, RIGHT_COLUMN) == pytest.approx(0.625)
    assert M.sad(PRED, REF, RIGHT_COLUMN) == pytest.approx(1.5 / 1000)
    assert M.mad(PRED, REF, np.zeros((2, 2), bool)) == 0.0


def test_integer_mattes_are_scaled_to_unit_alpha() -> None:
    pred8 = np.array([[0, 128], [255, 255]], np.uint8)
    ref16 = (REF * 65535).astype(np.uint16)
    assert M.mad(pred8, ref16) == pytest.approx((0 + (255 - 128) / 255 + 0 + 1) / 4)


def test_size_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        M.mse(np.zeros((2, 2)), np.zeros((2, 3)))


def test_gradient_kernel_matches_the_composition1k_size() -> None:
    smooth, derive = M.gaussian_derivative_kernels(1.4)
    # half-size = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(3.62) = 4
    assert smooth.shape == derive.shape == (9,)
    assert np.linalg.norm(np.outer(smooth, derive)) == pytest.approx(1.0)
    assert np.allclose(derive, -derive[::-1]) and derive[4] == 0


def test_gradient_error_is_zero_for_equal_mattes_and_positive_otherwise() -> None:
    ref = _soft_disc(40, 48)
    assert M.gradient_error(ref, ref) == 0.0
    blurred = cv2.GaussianBlur(ref, (0, 0), 3)
    assert M.gradient_error(blurred, ref) > 0.0


def test_connectivity_error_by_hand() -> None:
    # ref pixel 2 is 0, so at every threshold the source is {0, 1}; pixels 2 and 3
    # drop out at the first threshold (level 0): phi_pred = [1, 1, 0, 0], phi_ref = [1, 1, 1, 0]
    assert M.connectivity_error(np.array([[1.0, 1, 1, 1]]), np.array([[1.0, 1, 0, 1]])) == pytest.approx(1 / 1000)
    # pred 0.25 leaves the source at 0.3 -> level 0.2; ref 0.5 - 0.2 = 0.3 >= 0.15 -> phi_ref 0.7, phi_pred 1
    assert M.connectivity_error(np.array([[1.0, 0.25]]), np.array([[1.0, 0.5]])) == pytest.approx(0.3 / 1000)


def test_iou_by_hand() -> None:
    pred = np.zeros((4, 4))
    ref = np.zeros((4, 4))
    pred[0, :4] = 1.0  # 4 pixels
    ref[0, 1:4] = 1.0
    ref[1, 0:3] = 1.0  # 6 pixels, 3 shared
    assert M.iou(pred, ref) == pytest.approx(3 / 7)
    assert M.iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_boundary_f_by_hand() -> None:
    ref = np.zeros((8, 8))
    ref[2:6, 2:6] = 1
    pred = np.zeros((8, 8))
    pred[2:6, 3:7] = 1  # shifted right by one pixel
    # 12 contour pixels each; the top and bottom rows share 3 + 3 of them
    assert M.boundary_f(pred, ref, tolerance=0) == pytest.approx(0.5)
    assert M.boundary_f(pred, ref, tolerance=1) == pytest.approx(1.0)
    assert M.boundary_f(np.zeros((8, 8)), ref) == 0.0


def test_the_image_frame_is_not_a_contour() -> None:
    ref = np.zeros((10, 10))
    ref[4:, :] = 1  # a body cut off by the bottom and side edges: contour = row 4 only
    assert M.boundary_f(ref, ref) == 1.0
    pred = ref.copy()
    pred[:, :] = 1  # everything foreground: no contour at all
    assert M.boundary_f(pred, ref) == 0.0


def test_unknown_band_surrounds_the_edge_only() -> None:
    ref = np.zeros((40, 40))
    ref[10:30, 10:30] = 1
    band = M.unknown_band(ref, radius=3)
    assert band[10, 20] and band[9, 20] and band[7, 20] and not band[6, 20]
    assert not band[20, 20] and not band[0, 0]
    trimap = M.make_trimap(ref, radius=3)
    assert trimap[20, 20] == 1.0 and trimap[0, 0] == 0.0
    assert np.array_equal(M.trimap_region((trimap * 255).round().astype(np.uint8)), band)


def test_dtssd_by_hand() -> None:
    refs = np.zeros((2, 1, 2))
    preds = np.array([[[0.0, 0.0]], [[0.2, 0.4]]])
    assert M.dtssd(preds, refs) == pytest.approx(math.sqrt((0.04 + 0.16) / 2))
    assert M.dtssd(refs, refs) == 0.0


def test_messddt_by_hand_on_a_static_reference() -> None:
    refs = np.zeros((2, 16, 16))
    preds = np.zeros((2, 16, 16))
    preds[1, :, :8] = 0.2
    preds[1, :, 8:] = 0.4  # static reference -> zero flow -> mean of (p0 - p1)^2
    assert M.messddt(preds, refs) == pytest.approx((0.04 + 0.16) / 2, abs=1e-6)


def test_motion_is_compensated_along_the_reference_flow() -> None:
    first = _soft_disc(64, 64, cx=28)
    second = _soft_disc(64, 64, cx=31)  # moved 3 px right
    refs = np.stack([first, second])
    flow = M.reference_flow(first, second)
    inside = first > 0.05
    assert np.median(flow[..., 0][inside]) == pytest.approx(3.0, abs=0.5)
    assert np.abs(M.warp_back(second, flow) - first).mean() < 0.2 * np.abs(second - first).mean()
    # a prediction that lags one frame behind the motion is penalised; a moving one much less
    lagging = np.stack([first, first])
    assert M.messddt(refs, refs) < 0.2 * M.messddt(lagging, refs)


def test_flicker_by_hand() -> None:
    frames = np.array([[[0.0, 0.0, 0.0]], [[0.5, 0.05, 0.5]], [[0.0, 0.0, 0.3]]])
    # pixel 0 flickers; pixel 1 moves less than xi; pixel 2's neighbours disagree
    assert M.flicker_counts(frames).tolist() == [1]
    assert M.flicker_rate(frames) == pytest.approx(1 / 3)
    assert M.flicker_counts(frames[:2]).tolist() == []


# -------------------------------------------------- naive loop references


def _naive_gradient_error(pred: np.ndarray, ref: np.ndarray, region: np.ndarray, sigma: float = 1.4) -> float:
    """Composition-1k definition written out with loops: full 2-D kernel, replicate padding."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 0.01)))
    size = 2 * half + 1
    kx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            u, v = i - half, j - half
            g = math.exp(-(u**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            gv = math.exp(-(v**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            kx[i, j] = g * (-v * gv / sigma**2)
    kx /= math.sqrt((kx**2).sum())
    ky = kx.T

    def magnitude(alpha: np.ndarray) -> np.ndarray:
        a = (alpha - alpha.min()) / (alpha.max() - alpha.min())
        h, w = a.shape
        out = np.zeros_like(a)
        for y in range(h):
            for x in range(w):
                gx = gy = 0.0
                for i in range(size):
                    for j in range(size):
                        value = a[min(max(y + i - half, 0), h - 1), min(max(x + j - half, 0), w - 1)]
                        gx += kx[i, j] * value
                        gy += ky[i, j] * value
                out[y, x] = math.hypot(gx, gy)
        return out

    diff = (magnitude(pred) - magnitude(ref)) ** 2
    return float(sum(diff[y, x] for y, x in zip(*np.nonzero(region))) / 1000)


def _naive_connectivity_error(pred: np.ndarray, ref: np.ndarray, region: np.ndarray) -> float:
    """Connectivity error with a hand-written flood fill instead of OpenCV's labelling."""
    h, w = ref.shape
    level = -np.ones((h, w))
    for k in range(1, 11):
        both = (pred >= k / 10) & (ref >= k / 10)
        seen = np.zeros((h, w), bool)
        best: list[tuple[int, int]] = []
        for sy in range(h):
            for sx in range(w):
                if both[sy, sx] and not seen[sy, sx]:
                    component, stack = [], [(sy, sx)]
                    seen[sy, sx] = True
                    while stack:
                        y, x = stack.pop()
                        component.append((y, x))
                        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                            if 0 <= ny < h and 0 <= nx < w and both[ny, nx] and not seen[ny, nx]:
                                seen[ny, nx] = True
                                stack.append((ny, nx))
                    if len(component) > len(best):
                        best = component
        source = set(best)
        for y in range(h):
            for x in range(w):
                if level[y, x] == -1 and (y, x) not in source:
                    level[y, x] = (k - 1) / 10
    level[level == -1] = 1
    total = 0.0
    for y, x in zip(*np.nonzero(region)):
        dp, dr = pred[y, x] - level[y, x], ref[y, x] - level[y, x]
        total += abs((1 - (dp if dp >= 0.15 else 0)) - (1 - (dr if dr >= 0.15 else 0)))
    return total / 1000


def _soft_disc(height: int, width: int, cx: float | None = None, blur: float = 2.0) -> np.ndarray:
    alpha = np.zeros((height, width), np.float64)
    cx = width / 2 if cx is None else cx
    cv2.circle(alpha, (int(cx), height // 2), min(height, width) // 4, 1.0, -1)
    return cv2.GaussianBlur(alpha, (0, 0), blur)


def _pair_with_band(seed: int = 0, size: tuple[int, int] = (24, 28)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = _soft_disc(*size)
    ref[ref > 0.97] = 1.0
    pred = np.clip(cv2.GaussianBlur(ref + rng.normal(0, 0.15, ref.shape), (0, 0), 0.8), 0, 1)
    pred[0, 0], pred[-1, -1] = 0.0, 1.0  # both span 0..1 so min-max stretching is shared
    ref[0, 0] = 0.0
    return pred, ref, M.unknown_band(ref, radius=3)


def test_gradient_error_matches_a_naive_loop_reference() -> None:
    pred, ref, band = _pair_with_band(1)
    assert M.gradient_error(pred, ref, band) == pytest.approx(_naive_gradient_error(pred, ref, band), rel=1e-9)
    whole = np.ones_like(band)
    assert M.gradient_error(pred, ref) == pytest.approx(_naive_gradient_error(pred, ref, whole), rel=1e-9)


def test_connectivity_error_matches_a_naive_loop_reference() -> None:
    for seed in range(3):
        pred, ref, band = _pair_with_band(seed)
        expected = _naive_connectivity_error(pred, ref, band)
        assert expected > 0
        assert M.connectivity_error(pred, ref, band) == pytest.approx(expected, rel=1e-9)


# ------------------------------------------- independent implementation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_mmeval_within_one_percent(seed: int) -> None:
    """Cross-check against OpenMMLab's mmeval (``pip install mmeval``); skipped when absent."""
    mmeval = pytest.importorskip("mmeval")
    rng = np.random.default_rng(seed)
    ref = _soft_disc(80, 96, blur=3.0)
    ref[ref > 0.98] = 1.0
    pred = np.clip(cv2.GaussianBlur(ref + rng.normal(0, 0.1, ref.shape), (0, 0), 1.0), 0, 1)
    pred[0, 0], pred[-1, -1], ref[0, 0] = 0.0, 1.0, 0.0
    band = M.unknown_band(ref, radius=6)
    trimap = np.where(band, 128, np.where(ref > 0.5, 255, 0)).astype(np.uint8)
    ours = {
        "sad": M.sad(pred, ref),
        "mse": M.mse(pred, ref, band),
        "grad": M.gradient_error(pred, ref, band),
        "conn": M.connectivity_error(pred, ref, band),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mmeval's deprecated-alias warnings
        theirs = {
            "sad": mmeval.SumAbsoluteDifferences()([pred], [ref])["sad"],
            # mmeval's matting MSE sums over all pixels of trimap-masked inputs, / unknown count
            "mse": mmeval.MattingMeanSquaredError()([pred * band], [ref * band], [trimap])["matting_mse"],
            "grad": mmeval.GradientError()([pred], [ref], [trimap])["gradient_error"],
            "conn": mmeval.ConnectivityError()([pred], [ref], [trimap])["connectivity_error"],
        }
    for key, value in ours.items():
        assert value == pytest.approx(theirs[key], rel=0.01), key
