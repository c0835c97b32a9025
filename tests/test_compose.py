"""Cut-outs, foreground decontamination, backgrounds and previews."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modnet_matting import compose

HAIR = np.array([110, 70, 40], np.float32) / 255.0
GREEN = np.array([0, 255, 0], np.float32) / 255.0


def green_screen_hair(height: int = 96, width: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Opaque brown 'head' below, thin soft 'strands' above, all over pure green."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros((height, width), np.float32)
    alpha[height // 2:] = 1.0
    for x in range(4, width - 4, 6):
        top = int(rng.integers(8, height // 4))
        alpha[top:height // 2, x] = rng.uniform(0.3, 0.7)
        alpha[top:height // 2, x + 1] = rng.uniform(0.1, 0.4)
    image = alpha[..., None] * HAIR + (1.0 - alpha[..., None]) * GREEN
    return (image * 255.0 + 0.5).astype(np.uint8), alpha


@pytest.mark.parametrize("max_pixels", [compose.FOREGROUND_MAX_PIXELS, 2000], ids=["full-res", "reduced-res"])
def test_cutout_removes_green_fringe_from_soft_hair(max_pixels: int) -> None:
    image, alpha = green_screen_hair()
    soft = (alpha > 0.05) & (alpha < 0.95)
    naive_error = np.abs(image[soft] / 255.0 - HAIR).max()
    assert naive_error > 0.3  # the planted fringe is really there

    fg = compose.estimate_foreground(image, alpha, max_pixels=max_pixels)
    rgba = compose.cutout(image, alpha, fg)
    colours = rgba[soft][:, :3].astype(np.float32) / 255.0
    assert np.abs(colours - HAIR).max() < 3 / 255
    assert np.array_equal(rgba[..., 3], (alpha * 255 + 0.5).astype(np.uint8))


def test_banded_upsampling_matches_a_whole_image_resize() -> None:
    """The refinement works band by band (bounded memory); each band must equal that slice of cv2.resize."""
    import cv2

    small = np.random.default_rng(0).random((37, 29, 3)).astype(np.float32)
    whole = cv2.resize(small, (301, 257), interpolation=cv2.INTER_LINEAR)
    bands = [compose._upsample_rows(small, 301, 257, top, min(64, 257 - top)) for top in range(0, 257, 64)]
    assert np.abs(np.concatenate(bands) - whole).max() < 2e-2 * np.ptp(small)  # warpAffine's 1/32-pixel grid


def test_large_images_are_refined_in_bands(monkeypatch) -> None:
    image, alpha = green_screen_hair(300, 240)
    reference = compose.estimate_foreground(image, alpha, max_pixels=5000)
    monkeypatch.setattr(compose, "_BAND_ROWS", 7)  # many bands, one not full
    banded = compose.estimate_foreground(image, alpha, max_pixels=5000)
    assert np.array_equal(banded, reference)  # band boundaries leave no seam
    opaque = alpha >= 1
    assert np.array_equal(banded[opaque], image[opaque] / np.float32(255.0))


def test_foreground_keeps_opaque_pixels_exactly(portrait) -> None:
    image, alpha = portrait
    fg = compose.estimate_foreground(image, alpha)
    opaque = alpha >= 1
    assert np.array_equal((fg[opaque] * 255 + 0.5).astype(np.uint8), image[opaque])


def test_composite_with_binary_alpha_is_exact(portrait) -> None:
    image, alpha = portrait
    background = np.random.default_rng(1).integers(0, 256, image.shape).astype(np.uint8)
    out = compose.composite(image, alpha, background)
    assert np.array_equal(out[alpha == 1], image[alpha == 1])
    assert np.array_equal(out[alpha == 0], background[alpha == 0])


def test_cutout_16_bit() -> None:
    image, alpha = green_screen_hair(64, 48)
    rgba = compose.cutout(image, alpha, bits=16)
    assert rgba.dtype == np.uint16 and rgba.shape == (64, 48, 4)
    assert rgba[..., 3].max() == 65535


@pytest.mark.parametrize(
    ("text", "rgb"),
    [("white", (255, 255, 255)), ("#00ff00", (0, 255, 0)), ("0f0", (0, 255, 0)), ("10, 20,30", (10, 20, 30))],
)
def test_parse_color(text: str, rgb: tuple[int, int, int]) -> None:
    assert compose.parse_color(text) == rgb
    assert compose.parse_background(text).color == rgb


@pytest.mark.parametrize("text", ["#00ff0080", "rgba(0, 255, 0, 128)"])
def test_a_colour_with_alpha_is_refused_not_flattened(text: str) -> None:
    """'#00ff0080' was read as opaque green: the alpha the user asked for was dropped silently."""
    with pytest.raises(ValueError, match="has an alpha channel"):
        compose.parse_color(text)


@pytest.mark.parametrize("text", ["nocolour", "1,2", "300,0,0", "a,b,c", "#00ff0080"])
def test_bad_background_is_a_readable_error(text: str) -> None:
    with pytest.raises(ValueError, match="not 'blur', an image file"):
        compose.parse_background(text)


def test_image_background_covers_and_centres(tmp_path) -> None:
    picture = np.zeros((50, 200, 3), np.uint8)
    picture[:, 90:110] = 255  # a white band in the middle
    path = tmp_path / "bg.png"
    Image.fromarray(picture).save(path)
    background = compose.parse_background(str(path))
    assert background.kind == "image"
    out = background.render(np.zeros((100, 100, 3), np.uint8), np.zeros((100, 100), np.float32))
    assert out.shape == (100, 100, 3)
    # scaled x2 to cover the height (100x400), centre 100 columns kept: the band lands at 30-70
    assert out[:, 35:65].min() == 255 and out[:, :25].max() == 0 and out[:, 75:].max() == 0


def test_blur_background_hides_the_person(portrait) -> None:
    image, alpha = portrait
    image = image.copy()
    image[alpha == 1] = (255, 0, 0)  # a saturated red person over a grey scene
    image[alpha == 0] = (128, 128, 128)
    out = compose.parse_background("blur").render(image, alpha)
    assert out.shape == image.shape
    assert np.abs(out.astype(int) - 128).max() <= 2  # no red bled into the new background


def test_preview_is_three_panels(portrait) -> None:
    image, alpha = portrait
    panels = compose.preview(image, alpha)
    height, width = image.shape[:2]
    assert panels.shape == (height, 3 * width, 3) and panels.dtype == np.uint8
    assert np.array_equal(panels[:, :width], image)
    assert np.array_equal(panels[:, width:2 * width, 0], (alpha * 255).astype(np.uint8))
    board = compose.checkerboard(height, width)
    transparent = alpha == 0
    assert np.array_equal(panels[:, 2 * width:][transparent], board[transparent])


def test_preview_of_a_big_image_is_downscaled() -> None:
    image = np.zeros((2000, 1000, 3), np.uint8)
    alpha = np.ones((2000, 1000), np.float32)
    assert compose.preview(image, alpha, max_height=400).shape == (400, 600, 3)
