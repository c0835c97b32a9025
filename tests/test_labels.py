"""Soft alpha labels from binary masks, and the ``modnet labels`` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modnet_matting.cli.main import main
from modnet_matting.io import read_image, save_image
from modnet_matting.train.labels import band_trimap, soft_alpha
from modnet_matting.train.softlabels import label_image
from modnet_matting.train.synthetic import synthetic_portrait


def portrait(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, its true soft alpha (float) and the binary mask a dataset would give."""
    image, alpha, _ = synthetic_portrait(96, 80, np.random.default_rng(seed))
    return image, alpha / 255.0, np.where(alpha > 127, 255, 0).astype(np.uint8)


def test_band_trimap_widths() -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[:, :20] = 255
    row = band_trimap(mask, 3)[20]
    assert (row[:17] == 1).all() and (row[17:23] == 0.5).all() and (row[23:] == 0).all()


@pytest.mark.parametrize("method", ["closed_form", "guided"])
def test_soft_alpha_keeps_known_pixels_and_stays_in_range(method: str) -> None:
    image, _, mask = portrait()
    alpha = soft_alpha(image, mask, band=4, method=method)
    known = band_trimap(mask, 4) != 0.5
    assert alpha.dtype == np.float32 and alpha.shape == mask.shape
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert np.array_equal(alpha[known], (mask[known] > 127).astype(np.float32))
    assert 0 < ((alpha > 0.02) & (alpha < 0.98)).sum() <= (~known).sum()


@pytest.mark.parametrize("method", ["closed_form", "guided"])
def test_soft_alpha_is_closer_to_the_true_edge_than_the_mask(method: str) -> None:
    for seed in range(2):
        image, truth, mask = portrait(seed)
        band = band_trimap(mask, 4) == 0.5
        alpha = soft_alpha(image, mask, band=4, method=method)
        assert np.abs(alpha - truth)[band].mean() < 0.8 * np.abs(mask / 255.0 - truth)[band].mean()


def test_empty_and_full_masks_stay_binary() -> None:
    image, _, _ = portrait()
    assert (soft_alpha(image, np.zeros((96, 80), np.uint8)) == 0).all()
    assert (soft_alpha(image, np.full((96, 80), 255, np.uint8)) == 1).all()


def test_teacher_is_averaged_in_the_band_only() -> None:
    image, _, mask = portrait()
    solver = label_image(image, mask, "guided", band=4)
    mixed = label_image(image, mask, "guided", band=4, teacher=lambda rgb: np.full(rgb.shape[:2], 0.5, np.float32))
    unknown = band_trimap(mask, 4) == 0.5
    assert np.allclose(mixed[unknown], 0.5 * (solver[unknown] + 0.5))
    assert np.array_equal(mixed[~unknown], solver[~unknown])


def make_mask_set(root: Path) -> None:
    for name, seed in (("a", 0), ("b", 1)):
        image, _, mask = portrait(seed)
        save_image(root / "images" / f"{name}.png", image)
        save_image(root / "masks" / f"{name}.png", mask)
    (root / "images" / "broken.png").write_bytes(b"not an image")
    save_image(root / "masks" / "broken.png", np.zeros((96, 80), np.uint8))
    save_image(root / "images" / "small.png", np.zeros((40, 40, 3), np.uint8))
    save_image(root / "masks" / "small.png", np.zeros((96, 80), np.uint8))
    save_image(root / "images" / "unlabelled.png", np.zeros((96, 80, 3), np.uint8))


def test_labels_command_writes_a_matte_set_and_reports_bad_pairs(tmp_path: Path, capsys, random_weights) -> None:
    make_mask_set(tmp_path / "set")
    out = tmp_path / "out"
    code = main(["labels", str(tmp_path / "set"), "-o", str(out), "--method", "guided", "--band", "4"])
    text = capsys.readouterr().out
    assert code == 1
    assert "2 labelled" in text and "broken.png" in text and "small.png" in text and "unlabelled" in text
    assert sorted(p.name for p in (out / "image").iterdir()) == ["a.png", "b.png"]
    matte = read_image(out / "matte" / "a.png")[..., 0]
    image, _, mask = portrait(0)
    assert matte.shape == mask.shape
    assert np.abs(matte.astype(int) - (label_image(image, mask, "guided", 4) * 255 + 0.5).astype(int)).max() <= 1
    assert np.array_equal(read_image(out / "image" / "a.png"), image)
    assert not list(out.rglob("*.part"))
    # A rerun skips finished names; a teacher from our weights file runs end to end.
    assert main(["labels", str(tmp_path / "set"), "-o", str(out), "--method", "guided"]) == 1
    assert "2 already done" in capsys.readouterr().out
    code = main(["labels", str(tmp_path / "set"), "-o", str(tmp_path / "t"), "--method", "guided",
                 "--teacher", str(random_weights), "--device", "cpu", "--short-side", "64"])
    assert code == 1 and read_image(tmp_path / "t" / "matte" / "b.png").shape[:2] == (77, 64)


def test_labels_command_rejects_a_folder_without_masks(tmp_path: Path, capsys) -> None:
    (tmp_path / "photos").mkdir()
    assert main(["labels", str(tmp_path / "photos"), "-o", str(tmp_path / "out")]) == 2
    assert "expected images/" in capsys.readouterr().err
