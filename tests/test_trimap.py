"""Trimaps from mattes: the authors' dilation / erosion rule."""

from __future__ import annotations

import numpy as np

from modnet_matting.train.trimap import trimap_from_matte


def edge_matte(size: int = 64, edge: int = 32) -> np.ndarray:
    matte = np.zeros((size, size), np.float32)
    matte[:, :edge] = 1.0
    return matte


def test_fixed_band_around_a_straight_edge() -> None:
    trimap = trimap_from_matte(edge_matte(), band=(5, 5))
    # A 5x5 dilation grows the support by 2 px, a 5x5 erosion shrinks the core by 2 px.
    row = trimap[10]
    assert set(np.unique(trimap)) == {0.0, 0.5, 1.0}
    assert (row[:30] == 1).all() and (row[30:34] == 0.5).all() and (row[34:] == 0).all()
    assert trimap.dtype == np.float32


def test_support_is_any_nonzero_alpha_and_core_needs_point_nine() -> None:
    matte = np.zeros((64, 64), np.float32)
    matte[20:44, 20:44] = 0.85  # inside the support, but never "foreground"
    matte[28:36, 28:36] = 0.95
    matte[0, 63] = 0.01  # a faint speck still counts as support
    trimap = trimap_from_matte(matte, band=(3, 3))
    assert trimap[24, 24] == 0.5
    assert trimap[32, 32] == 1.0
    assert trimap[0, 63] == 0.5 and trimap[63, 0] == 0.0


def test_random_band_is_10_to_20_pixels_per_256() -> None:
    widths = set()
    for seed in range(6):
        trimap = trimap_from_matte(edge_matte(256, 128), np.random.default_rng(seed))
        widths.add(int((trimap[100] == 0.5).sum()))
    # Dilation and erosion of 10..20 px kernels each move the edge by about half their size.
    assert min(widths) >= 9 and max(widths) <= 20 and len(widths) > 1
    big = trimap_from_matte(edge_matte(512, 256), np.random.default_rng(0))
    assert (big[100] == 0.5).sum() >= 19  # kernels double at 512 px


def test_same_rng_same_trimap() -> None:
    a = trimap_from_matte(edge_matte(256, 100), np.random.default_rng(7))
    b = trimap_from_matte(edge_matte(256, 100), np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_empty_and_full_mattes() -> None:
    assert (trimap_from_matte(np.zeros((32, 32), np.float32), band=(5, 5)) == 0).all()
    full = trimap_from_matte(np.ones((32, 32), np.float32), band=(5, 5))
    assert (full == 1).all()
