"""MODNet's supervised losses against values worked out by hand on 32x32 tensors."""

from __future__ import annotations

import math

import pytest
import torch

from modnet_matting.train.losses import LossWeights, gaussian_blur3, gaussian_kernel3, modnet_losses, semantic_target

# 1-D weights of the 3x3 Gaussian (sigma 0.8): side = exp(-1 / (2 * 0.64)) relative to a centre of 1.
SIDE = math.exp(-1 / (2 * 0.8**2))
W_SIDE, W_CENTRE = SIDE / (1 + 2 * SIDE), 1 / (1 + 2 * SIDE)


def half_plane_case() -> dict[str, torch.Tensor]:
    """gt = 1 in columns 0-15; unknown band = columns 14-17; flat predictions and image."""
    gt = torch.zeros(1, 1, 32, 32)
    gt[..., :16] = 1.0
    trimap = torch.zeros(1, 1, 32, 32)
    trimap[..., :14] = 1.0
    trimap[..., 14:18] = 0.5
    return {
        "gt": gt,
        "trimap": trimap,
        "semantic": torch.zeros(1, 1, 2, 2),
        "detail": torch.full((1, 1, 32, 32), 0.25),
        "matte": torch.full((1, 1, 32, 32), 0.5),
        "image": torch.full((1, 3, 32, 32), 0.5),
    }


def test_gaussian_kernel_is_the_fixed_sigma_08_kernel() -> None:
    kernel = gaussian_kernel3()[0, 0]
    expected = torch.tensor([[W_SIDE * W_SIDE, W_SIDE * W_CENTRE, W_SIDE * W_SIDE],
                             [W_CENTRE * W_SIDE, W_CENTRE * W_CENTRE, W_CENTRE * W_SIDE],
                             [W_SIDE * W_SIDE, W_SIDE * W_CENTRE, W_SIDE * W_SIDE]])
    assert torch.allclose(kernel, expected, atol=1e-7)
    assert kernel[1, 1].item() == pytest.approx(0.27249, abs=1e-5)
    assert kernel[0, 0].item() == pytest.approx(0.05712, abs=1e-5)
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_blur_uses_reflect_padding() -> None:
    # Columns [1, 0] reflect-padded are [0, 1, 0, 1]: column 0 keeps the centre weight, column 1 gets both sides.
    x = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    out = gaussian_blur3(x)[0, 0]
    assert torch.allclose(out, torch.tensor([[W_CENTRE, 2 * W_SIDE]] * 2), atol=1e-6)
    flat = gaussian_blur3(torch.full((1, 1, 5, 5), 0.7))
    assert torch.allclose(flat, torch.full_like(flat, 0.7), atol=1e-6)


def test_semantic_target_is_bilinear_sixteenth_then_blur() -> None:
    case = half_plane_case()
    # Bilinear x1/16 samples source columns 7.5 and 23.5: [1, 0] in every row.
    target = semantic_target(case["gt"])[0, 0]
    assert torch.allclose(target, torch.tensor([[W_CENTRE, 2 * W_SIDE]] * 2), atol=1e-6)


def test_each_loss_term_matches_the_hand_computation() -> None:
    c = half_plane_case()
    losses = modnet_losses(c["semantic"], c["detail"], c["matte"], c["gt"], c["trimap"], c["image"])
    # L_s: prediction 0 against [0.522, 0.478] per row.
    semantic = 10 * (W_CENTRE**2 + (2 * W_SIDE) ** 2) / 2
    # L_d: only the 4 band columns count, |0.25 - 1| twice and |0.25 - 0| twice per row, mean over 1024 px.
    detail = 10 * 32 * (2 * 0.75 + 2 * 0.25) / 1024
    # L_a: L1 0.5 everywhere; band term 4 * 128 * 0.5 / 1024; the compositional terms scale both by the image (0.5).
    l1, band = 0.5, 4 * 128 * 0.5 / 1024
    matte = l1 + band + 0.5 * l1 + 0.5 * band
    assert losses["semantic"].item() == pytest.approx(semantic, rel=1e-5)
    assert losses["detail"].item() == pytest.approx(detail, rel=1e-6)
    assert losses["matte"].item() == pytest.approx(matte, rel=1e-6)
    assert losses["total"].item() == pytest.approx(semantic + detail + matte, rel=1e-6)


def test_weights_scale_the_terms() -> None:
    c = half_plane_case()
    args = (c["semantic"], c["detail"], c["matte"], c["gt"], c["trimap"], c["image"])
    base = modnet_losses(*args)
    scaled = modnet_losses(*args, weights=LossWeights(semantic=1.0, detail=0.0, matte=2.0))
    assert scaled["semantic"].item() == pytest.approx(base["semantic"].item() / 10, rel=1e-6)
    assert scaled["detail"].item() == 0
    assert scaled["matte"].item() == pytest.approx(2 * base["matte"].item(), rel=1e-6)


def test_known_pixels_carry_no_detail_gradient() -> None:
    c = half_plane_case()
    detail = c["detail"].clone().requires_grad_(True)
    modnet_losses(c["semantic"], detail, c["matte"], c["gt"], c["trimap"], c["image"])["total"].backward()
    grad = detail.grad[0, 0]
    assert grad[:, 14:18].abs().min() > 0
    assert grad[:, :14].abs().max() == 0 and grad[:, 18:].abs().max() == 0


def test_perfect_predictions_cost_nothing() -> None:
    c = half_plane_case()
    losses = modnet_losses(semantic_target(c["gt"]), c["gt"], c["gt"], c["gt"], c["trimap"], c["image"])
    assert losses["total"].item() == pytest.approx(0.0, abs=1e-7)
